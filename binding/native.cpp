// regclient_ext._native: calls the Go library with the GIL released and
// hands its results back as bytes. It has no registry logic: the
// Python layer decodes the JSON records and raises the public exceptions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loader.h"

namespace py = pybind11;

namespace {

// How long one wait on an operation lasts before Python gets the GIL back
// to run signal handlers, so Ctrl-C is seen within this many milliseconds.
constexpr int64_t kWaitSliceMs = 50;

// Error envelope returned instead of calling Go in a forked child.
const char kForkedRecord[] =
    R"json({"error":{"kind":"forked","message":"the Go runtime was started in the parent process before fork()"},"logs":[]})json";

// Buffer owns a C buffer returned by the Go library.
class Buffer {
  public:
    explicit Buffer(const rcx::Api &api) : api_(api) {}
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    ~Buffer() {
        if (data != nullptr) api_.free(data);
    }
    py::bytes to_bytes() const { return data == nullptr ? py::bytes() : py::bytes(data, size); }

    char *data = nullptr;
    size_t size = 0;

  private:
    const rcx::Api &api_;
};

// Operation frees a Go operation on every path out of call(). Freeing
// cancels the operation if it still runs and waits for its goroutine, so
// the wait happens without the GIL.
class Operation {
  public:
    Operation(const rcx::Api &api, uintptr_t handle) : handle(handle), api_(api) {}
    Operation(const Operation &) = delete;
    Operation &operator=(const Operation &) = delete;
    ~Operation() {
        py::gil_scoped_release release;
        api_.op_free(handle);
    }

    const uintptr_t handle;

  private:
    const rcx::Api &api_;
};

py::tuple client_new(py::bytes options) {
    if (rcx::forked_after_load()) return py::make_tuple(0, py::bytes(kForkedRecord));
    const rcx::Api &api = rcx::api();
    std::string raw = options;

    uintptr_t client = 0;
    Buffer error(api);
    int code;
    {
        // Reading docker's config may run credential helpers.
        py::gil_scoped_release release;
        code = api.client_new(raw.data(), raw.size(), &client, &error.data, &error.size);
    }
    if (code != rcx::kOK) return py::make_tuple(0, error.to_bytes());
    return py::make_tuple(client, py::none());
}

void client_free(uintptr_t client) {
    // A forked child cannot reach Go; the parent still owns the client.
    if (!rcx::loaded() || rcx::forked_after_load()) return;
    rcx::api().client_free(client);
}

py::tuple forked_result() { return py::make_tuple(false, py::bytes(kForkedRecord), py::bytes()); }

// Return (ok, envelope, body) of a finished operation.
py::tuple result_of(const rcx::Api &api, uintptr_t op) {
    Buffer meta(api), body(api);
    int code = api.op_result(op, &meta.data, &meta.size, &body.data, &body.size);
    return py::make_tuple(code == rcx::kOK, meta.to_bytes(), body.to_bytes());
}

// Wait until every operation has finished, in slices with the GIL
// released. A signal handler that raised (KeyboardInterrupt) ends the wait
// with that exception; the callers' Operation destructors cancel the Go side.
void wait_all(const rcx::Api &api, const std::vector<uintptr_t> &ops) {
    for (uintptr_t op : ops) {
        for (;;) {
            int code;
            {
                py::gil_scoped_release release;
                code = api.op_wait(op, kWaitSliceMs);
            }
            if (code == rcx::kOK) break;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        }
    }
}

// Run one request to completion and return (ok, envelope, body).
py::tuple call(uintptr_t client, py::bytes request) {
    if (rcx::forked_after_load()) return forked_result();
    const rcx::Api &api = rcx::api();
    std::string raw = request;

    Operation op(api, api.op_start(client, raw.data(), raw.size(), -1));
    wait_all(api, {op.handle});
    return result_of(api, op.handle);
}

// Run many requests concurrently under one release of the GIL and return
// their results in input order.
py::list call_many(uintptr_t client, const std::vector<std::string> &requests) {
    py::list results;
    if (rcx::forked_after_load()) {
        for (size_t i = 0; i < requests.size(); i++) results.append(forked_result());
        return results;
    }
    const rcx::Api &api = rcx::api();

    std::vector<std::unique_ptr<Operation>> ops;
    std::vector<uintptr_t> handles;
    ops.reserve(requests.size());
    for (const std::string &raw : requests) {
        ops.push_back(std::make_unique<Operation>(api, api.op_start(client, raw.data(), raw.size(), -1)));
        handles.push_back(ops.back()->handle);
    }
    wait_all(api, handles);
    for (uintptr_t handle : handles) results.append(result_of(api, handle));
    return results;
}

// Start a request and return its operation handle at once. The Go side
// writes the handle to notify_fd when the operation finishes; collect the
// result with finish().
py::object start(uintptr_t client, py::bytes request, int notify_fd) {
    if (rcx::forked_after_load()) return py::none();
    const rcx::Api &api = rcx::api();
    std::string raw = request;
    return py::int_(api.op_start(client, raw.data(), raw.size(), notify_fd));
}

// Return the result of a finished operation and free it.
py::tuple finish(uintptr_t op) {
    if (rcx::forked_after_load()) return forked_result();
    const rcx::Api &api = rcx::api();
    Operation owned(api, op);
    return result_of(api, op);
}

void cancel(uintptr_t op) {
    if (rcx::forked_after_load()) return;
    rcx::api().op_cancel(op);
}

void preload() {
    if (!rcx::forked_after_load()) rcx::api();
}

py::tuple stats() {
    if (!rcx::loaded() || rcx::forked_after_load()) return py::make_tuple(0, 0);
    int64_t clients = 0, operations = 0;
    rcx::api().stats(&clients, &operations);
    return py::make_tuple(clients, operations);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Internal binding to the regclient Go library; use the regclient_ext package instead.";
    m.def("loaded", &rcx::loaded, "Whether the Go library is loaded in this process.");
    m.def("library_path", &rcx::library_path, "Path of the Go library next to this module.");
    m.def("client_new", &client_new, py::arg("options"),
          "Create a Go client from JSON options; return (handle, None) or (0, error record).");
    m.def("client_free", &client_free, py::arg("client"), "Release a Go client.");
    m.def("call", &call, py::arg("client"), py::arg("request"),
          "Run a JSON request on a client with the GIL released; return (ok, envelope, body).");
    m.def("call_many", &call_many, py::arg("client"), py::arg("requests"),
          "Run JSON requests concurrently with the GIL released; return their results in order.");
    m.def("start", &start, py::arg("client"), py::arg("request"), py::arg("notify_fd"),
          "Start a request; its handle is written to notify_fd when it finishes. None in a forked child.");
    m.def("finish", &finish, py::arg("operation"), "Return (ok, envelope, body) of a finished operation and free it.");
    m.def("cancel", &cancel, py::arg("operation"), "Ask a running operation to stop.");
    m.def("preload", &preload, "Load the Go library now instead of on the first call.");
    m.def("stats", &stats, "Return the numbers of live Go client and operation handles.");
}
