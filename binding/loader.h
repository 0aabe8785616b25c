// Loading the Go library on first use.
#pragma once

#include <string>

#include "rcx_abi.h"

namespace rcx {

// Return the Go library's entry points, loading it on the first call.
// Throws std::runtime_error when the library cannot be loaded.
const Api &api();

// Whether the Go library is loaded in this process.
bool loaded();

// Whether this process is a fork of the one that loaded the Go library. A
// forked child has no Go threads, so any call into Go would hang.
bool forked_after_load();

// Set the spin budget in microseconds that the library gets when it loads.
void set_spin_budget_us(int64_t us);

// Full path of the Go library, next to this extension module.
std::string library_path();

}  // namespace rcx
