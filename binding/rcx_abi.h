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
using OpStartFn = uintptr_t (*)(uintptr_t client, const char *req, size_t req_len, int notify_fd);
using OpWaitFn = int (*)(uintptr_t op, int64_t timeout_ms);
using OpCancelFn = void (*)(uintptr_t op);
using OpResultFn = int (*)(uintptr_t op, char **meta, size_t *meta_len, char **body, size_t *body_len);
using OpFreeFn = void (*)(uintptr_t op);
using FreeFn = void (*)(void *p);
using StatsFn = void (*)(int64_t *clients, int64_t *operations);

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
};

}  // namespace rcx
