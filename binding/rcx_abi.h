// The C ABI exported by the Go library in go/abi.go, as function pointer
// types. The binding resolves them with dlsym after loading the library on
// first use, so no import library or link-time dependency is needed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rcx {

// Result codes returned by the Go functions.
constexpr int kOK = 0;
constexpr int kError = 1;
constexpr int kPending = 2;

using ClientNewFn = int (*)(const char *opts, size_t opts_len, uintptr_t *client, char **err, size_t *err_len);
using ClientFreeFn = void (*)(uintptr_t client);
using OpStartFn = uintptr_t (*)(uintptr_t client, const char *req, size_t req_len);
using OpWaitFn = int (*)(uintptr_t op, int64_t timeout_ms);
using OpCancelFn = void (*)(uintptr_t op);
using OpResultFn = int (*)(uintptr_t op, char **meta, size_t *meta_len, char **body, size_t *body_len);
using OpFreeFn = void (*)(uintptr_t op);
using FreeFn = void (*)(void *p);
using StatsFn = void (*)(int64_t *clients, int64_t *operations, int64_t *procs);

#ifndef _WIN32
// Slot mirrors rcx_slot in go/slot_unix.go. The loader rejects a library
// whose rcx_slot_size() differs from sizeof(Slot). A caller submits one by
// writing its address to the submit pipe and owns it again once Go has
// written its id to notify_fd. The caller allocates the slot and its
// request, and frees meta and body with Api::buffer_free.
struct Slot {
    uint64_t id;
    uintptr_t client;
    const char *request;
    size_t request_len;
    int32_t notify_fd;
    int32_t cancelled;  // set by the caller, atomically, before slot_cancel
    int32_t done;       // set by Go, atomically, once the result is in place
    int32_t code;
    char *meta;
    size_t meta_len;
    char *body;
    size_t body_len;
};

using SlotSizeFn = size_t (*)();
using SubmitFdFn = int (*)();
using SlotCancelFn = void (*)(uint64_t id);
using FreeFunctionFn = void *(*)();
using SetSpinBudgetFn = void (*)(int64_t us);
using SubmitPollStatsFn = void (*)(int64_t *polls, int64_t *finished);
#endif

// Api contains the resolved entry points of a loaded Go library.
struct Api {
    ClientNewFn client_new;
    ClientFreeFn client_free;
    OpStartFn op_start;
    OpWaitFn op_wait;
    OpCancelFn op_cancel;
    OpResultFn op_result;
    OpFreeFn op_free;
    FreeFn free;
    StatsFn stats;
#ifndef _WIN32
    SlotCancelFn slot_cancel;
    // The library's free() for slot results. Calling it does not enter Go.
    void (*buffer_free)(void *);
    // Write end of the pipe that takes slot addresses.
    int submit_fd;
    SubmitPollStatsFn submit_poll_stats;
#endif
};

}  // namespace rcx
