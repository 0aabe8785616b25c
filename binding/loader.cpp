#include "loader.h"

#include <mutex>
#include <stdexcept>

#ifdef _WIN32
#include <process.h>
#include <windows.h>
#else
#include <dlfcn.h>
#include <unistd.h>
#endif

#ifndef RCX_GO_LIBRARY
#error "RCX_GO_LIBRARY must name the Go library file, for example _regclient.so"
#endif

namespace rcx {
namespace {

std::once_flag load_once;
Api loaded_api{};
bool is_loaded = false;
long loaded_pid = 0;
int64_t spin_budget_us = 0;

long current_pid() {
#ifdef _WIN32
    return static_cast<long>(_getpid());
#else
    return static_cast<long>(getpid());
#endif
}

std::string module_directory() {
#ifdef _WIN32
    HMODULE self = nullptr;
    GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                       reinterpret_cast<LPCSTR>(&module_directory), &self);
    char path[MAX_PATH];
    DWORD n = GetModuleFileNameA(self, path, MAX_PATH);
    std::string full(path, n);
    return full.substr(0, full.find_last_of("\\/"));
#else
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&module_directory), &info) == 0 || info.dli_fname == nullptr) {
        throw std::runtime_error("cannot find the path of the regclient_ext._native module");
    }
    std::string full(info.dli_fname);
    auto slash = full.find_last_of('/');
    return slash == std::string::npos ? "." : full.substr(0, slash);
#endif
}

template <typename Fn>
Fn resolve(void *handle, const char *name) {
#ifdef _WIN32
    auto symbol = reinterpret_cast<void *>(GetProcAddress(static_cast<HMODULE>(handle), name));
#else
    void *symbol = dlsym(handle, name);
#endif
    if (symbol == nullptr) {
        throw std::runtime_error(std::string("the Go library lacks the symbol ") + name +
                                 ": reinstall regclient-ext so that both parts come from one build");
    }
    return reinterpret_cast<Fn>(symbol);
}

void load() {
    std::string path = library_path();
#ifdef _WIN32
    // NOTE: the Windows path is compiled by the wheel workflow but not run in this project's tests.
    void *handle = LoadLibraryExA(path.c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
    if (handle == nullptr) {
        throw std::runtime_error("failed to load " + path + ": error " + std::to_string(GetLastError()));
    }
#else
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char *reason = dlerror();
        throw std::runtime_error("failed to load " + path + ": " + (reason ? reason : "unknown error"));
    }
#endif
    loaded_api = Api{
        resolve<ClientNewFn>(handle, "rcx_client_new"), resolve<ClientFreeFn>(handle, "rcx_client_free"),
        resolve<OpStartFn>(handle, "rcx_op_start"),     resolve<OpWaitFn>(handle, "rcx_op_wait"),
        resolve<OpCancelFn>(handle, "rcx_op_cancel"),   resolve<OpResultFn>(handle, "rcx_op_result"),
        resolve<OpFreeFn>(handle, "rcx_op_free"),       resolve<FreeFn>(handle, "rcx_free"),
        resolve<StatsFn>(handle, "rcx_stats"),
    };
#ifndef _WIN32
    if (resolve<SlotSizeFn>(handle, "rcx_slot_size")() != sizeof(Slot)) {
        throw std::runtime_error("the Go library's request slot layout differs from the binding's: "
                                 "reinstall regclient-ext so that both parts come from one build");
    }
    loaded_api.slot_cancel = resolve<SlotCancelFn>(handle, "rcx_slot_cancel");
    loaded_api.buffer_free = reinterpret_cast<void (*)(void *)>(resolve<FreeFunctionFn>(handle, "rcx_free_function")());
    loaded_api.submit_fd = resolve<SubmitFdFn>(handle, "rcx_submit_fd")();
    if (loaded_api.submit_fd < 0) throw std::runtime_error("the Go library could not make its submit pipe");
    loaded_api.submit_poll_stats = resolve<SubmitPollStatsFn>(handle, "rcx_submit_poll_stats");
    resolve<SetSpinBudgetFn>(handle, "rcx_set_spin_budget")(spin_budget_us);
#endif
    loaded_pid = current_pid();
    is_loaded = true;
}

}  // namespace

const Api &api() {
    // call_once lets a failed load throw and be retried by the next call.
    std::call_once(load_once, load);
    return loaded_api;
}

bool loaded() { return is_loaded; }

void set_spin_budget_us(int64_t us) { spin_budget_us = us; }

bool forked_after_load() { return is_loaded && loaded_pid != current_pid(); }

std::string library_path() {
#ifdef _WIN32
    return module_directory() + "\\" + RCX_GO_LIBRARY;
#else
    return module_directory() + "/" + RCX_GO_LIBRARY;
#endif
}

}  // namespace rcx
