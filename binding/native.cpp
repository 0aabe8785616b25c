// regclient_ext._native: calls the Go library with the GIL released and
// hands its results back as bytes. It has no registry logic: the
// Python layer decodes the JSON records and raises the public exceptions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loader.h"

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#endif

namespace py = pybind11;

namespace {

// How long one wait on an operation lasts before Python gets the GIL back
// to run signal handlers, so Ctrl-C is seen within this many milliseconds.
constexpr int64_t kWaitSliceMs = 50;

// Interpreter exit. A daemon thread that retakes the GIL once the
// interpreter finalizes is ended with pthread_exit (CPython 3.10 to 3.13),
// and unwinding out of a destructor such as py::gil_scoped_release's
// aborts the process. So an atexit handler, which runs before finalization,
// marks the exit and waits for threads already retaking the GIL. Threads
// that return from a wait later block for good, and the exit ends them.
class ExitGuard {
  public:
    // Called before retaking the GIL. Never returns once the exit began,
    // except in the thread that runs the exit.
    void enter() {
        std::unique_lock<std::mutex> lock(mutex_);
        if (exiting_ && std::this_thread::get_id() != exiting_thread_) {
            lock.unlock();
            for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
        }
        retaking_++;
    }

    // Called with the GIL retaken.
    void leave() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--retaking_ == 0) idle_.notify_all();
    }

    // Runs as the atexit handler with the GIL held, and releases it while waiting.
    // NOTE: atexit._run_exitfuncs() called by hand, before the real exit,
    // also runs it, and calls from other threads then block for good.
    void begin_exit() {
        // A forked child copied the counts (and maybe a locked mutex) of
        // threads it does not have. It makes no calls, so it has nothing
        // to wait for.
        if (rcx::forked_after_load()) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            exiting_ = true;
            exiting_thread_ = std::this_thread::get_id();
        }
        PyThreadState *state = PyEval_SaveThread();
        {
            std::unique_lock<std::mutex> lock(mutex_);
            idle_.wait(lock, [this] { return retaking_ == 0; });
        }
        PyEval_RestoreThread(state);
    }

    // Called when the module loads, which happens again after an embedding
    // application runs Py_FinalizeEx() and then Py_Initialize().
    void reset() {
        std::lock_guard<std::mutex> lock(mutex_);
        exiting_ = false;
    }

  private:
    std::mutex mutex_;
    std::condition_variable idle_;
    bool exiting_ = false;
    std::thread::id exiting_thread_;
    int64_t retaking_ = 0;
};

ExitGuard &exit_guard() {
    // Never destroyed, because blocked threads may still use it at exit.
    static ExitGuard *guard = new ExitGuard();
    return *guard;
}

// ReleaseGil releases the GIL for its scope, like py::gil_scoped_release,
// but retakes it through the exit guard.
class ReleaseGil {
  public:
    ReleaseGil() : state_(PyEval_SaveThread()) {}
    ReleaseGil(const ReleaseGil &) = delete;
    ReleaseGil &operator=(const ReleaseGil &) = delete;
    ~ReleaseGil() {
        ExitGuard &guard = exit_guard();
        guard.enter();
        PyEval_RestoreThread(state_);
        guard.leave();
    }

  private:
    PyThreadState *state_;
};

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

py::tuple client_new(py::bytes options) {
    if (rcx::forked_after_load()) return py::make_tuple(0, py::bytes(kForkedRecord));
    const rcx::Api &api = rcx::api();
    std::string raw = options;

    uintptr_t client = 0;
    Buffer error(api);
    int code;
    {
        // Reading docker's config may run credential helpers.
        ReleaseGil release;
        code = api.client_new(raw.data(), raw.size(), &client, &error.data, &error.size);
    }
    if (code != rcx::kOK) return py::make_tuple(0, error.to_bytes());
    return py::make_tuple(client, py::none());
}

// Drop what the binding keeps about a client's calls (defined per platform).
void forget_client(uintptr_t client);

void client_free(uintptr_t client) {
    // A forked child cannot reach Go; the parent still owns the client.
    if (!rcx::loaded() || rcx::forked_after_load()) return;
    forget_client(client);
    rcx::api().client_free(client);
}

py::tuple forked_result() { return py::make_tuple(false, py::bytes(kForkedRecord), py::bytes()); }

#ifndef _WIN32
// POSIX: requests travel in slots (see rcx::Slot). Submitting one is a
// pipe write and reading its result is a memory copy. Once the library is
// loaded, only cancellation calls into Go, so a calling thread does not
// wait for a Go scheduler slot while Go is busy with other calls.

// How long a call interrupted by a signal waits for its cancelled
// operations before leaving them to finish on their own.
constexpr int64_t kCancelWaitMs = 2000;

// Slots allocated and not yet freed, for leak checks.
std::atomic<int64_t> live_slots{0};
std::atomic<uint64_t> next_slot_id{1};

void free_slot(rcx::Slot *slot) {
    const rcx::Api &api = rcx::api();
    if (slot->meta != nullptr) api.buffer_free(slot->meta);
    if (slot->body != nullptr) api.buffer_free(slot->body);
    std::free(const_cast<char *>(slot->request));
    std::free(slot);
    live_slots--;
}

// Allocate a slot holding a copy of request, and hand it to Go.
rcx::Slot *submit(const rcx::Api &api, uintptr_t client, const std::string &request, int notify_fd) {
    auto *slot = static_cast<rcx::Slot *>(std::calloc(1, sizeof(rcx::Slot)));
    auto *copy = static_cast<char *>(std::malloc(request.size() + 1));
    if (slot == nullptr || copy == nullptr) {
        std::free(slot);
        std::free(copy);
        throw std::bad_alloc();
    }
    std::memcpy(copy, request.data(), request.size());
    slot->id = next_slot_id++;
    slot->client = client;
    slot->request = copy;
    slot->request_len = request.size();
    slot->notify_fd = notify_fd;
    live_slots++;

    const uint64_t address = reinterpret_cast<uintptr_t>(slot);
    char record[sizeof address];
    std::memcpy(record, &address, sizeof address);
    for (;;) {
        ssize_t n = write(api.submit_fd, record, sizeof record);
        if (n == static_cast<ssize_t>(sizeof record)) return slot;
        if (n < 0 && errno == EINTR) continue;
        int error = errno;
        free_slot(slot);
        throw std::system_error(error, std::generic_category(), "failed to hand a request to the Go library");
    }
}

// Mark a slot cancelled before asking Go to stop it. The flag covers a
// slot that Go has not read off the submit pipe yet.
void mark_cancelled(rcx::Slot *slot) { __atomic_store_n(&slot->cancelled, 1, __ATOMIC_SEQ_CST); }

bool slot_done(const rcx::Slot *slot) { return __atomic_load_n(&slot->done, __ATOMIC_ACQUIRE) != 0; }

// Waking a thread that sleeps in poll() costs tens of microseconds on a
// virtual machine whose idle CPUs halt, a noticeable share of a request to a
// registry on the same host. So a lone synchronous call (not a batch)
// first waits by checking its slot's done flag and yielding the CPU, for up
// to the spin budget, and sleeps only after that. To keep calls to distant
// registries from burning CPU, a call spins only if the previous lone call
// on the same client finished within the budget, and only one thread spins
// at a time.
class SpinWait {
  public:
    // The budget in microseconds: REGCLIENT_EXT_SPIN_US when it is a whole
    // number from 0 (never spin) to kMaxUs in decimal digits, else kDefaultUs.
    static constexpr int64_t kDefaultUs = 1000;
    static constexpr int64_t kMaxUs = 10000;

    // It reads the environment, so the module makes it while loading, when
    // the GIL is held and the Go runtime (which can change the environment)
    // is not running yet.
    SpinWait() : budget_us_(read_budget()) {}

    int64_t budget_us() const { return budget_us_; }
    int64_t waits() const { return waits_.load(); }
    int64_t finished() const { return finished_.load(); }

    enum class Outcome { kSkipped, kDone, kGaveUp };

    // Spin until slot is done or the budget runs out. Skips spinning when it
    // is off, the client's last call was slow, or another thread spins.
    Outcome wait(uintptr_t client, const rcx::Slot *slot) {
        if (budget_us_ == 0) return Outcome::kSkipped;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (slow_clients_.count(client) != 0) return Outcome::kSkipped;
        }
        if (spinning_.exchange(true)) return Outcome::kSkipped;
        waits_++;
        using Clock = std::chrono::steady_clock;
        const Clock::time_point end = Clock::now() + std::chrono::microseconds(budget_us_);
        while (!slot_done(slot) && Clock::now() < end) sched_yield();
        const bool done = slot_done(slot);
        if (done) finished_++;
        spinning_.store(false);
        return done ? Outcome::kDone : Outcome::kGaveUp;
    }

    // Record whether a lone call on client finished within the budget. A
    // call interrupted before its result counts as slow.
    void record(uintptr_t client, bool fast) {
        if (budget_us_ == 0) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (fast) {
            slow_clients_.erase(client);
        } else {
            slow_clients_.insert(client);
        }
    }

    bool within_budget(std::chrono::steady_clock::duration elapsed) const {
        return elapsed <= std::chrono::microseconds(budget_us_);
    }

    void forget(uintptr_t client) {
        std::lock_guard<std::mutex> lock(mutex_);
        slow_clients_.erase(client);
    }

  private:
    static int64_t read_budget() {
        const char *value = std::getenv("REGCLIENT_EXT_SPIN_US");
        if (value == nullptr) return kDefaultUs;
        const size_t length = std::strlen(value);
        // Five digits hold kMaxUs; signs, spaces and other bases are rejected.
        if (length == 0 || length > 5) return kDefaultUs;
        int64_t parsed = 0;
        for (size_t i = 0; i < length; i++) {
            if (value[i] < '0' || value[i] > '9') return kDefaultUs;
            parsed = parsed * 10 + (value[i] - '0');
        }
        return parsed <= kMaxUs ? parsed : kDefaultUs;
    }

    const int64_t budget_us_;
    std::mutex mutex_;
    // Clients whose last lone call took longer than the budget.
    std::unordered_set<uintptr_t> slow_clients_;
    std::atomic<bool> spinning_{false};
    std::atomic<int64_t> waits_{0};
    std::atomic<int64_t> finished_{0};
};

SpinWait &spin_wait() {
    // Never destroyed, because daemon threads may still spin while the process exits.
    static SpinWait *instance = new SpinWait();
    return *instance;
}

// Return (ok, envelope, body) of a slot whose id has been notified.
py::tuple slot_result(const rcx::Slot *slot) {
    py::bytes meta = slot->meta == nullptr ? py::bytes() : py::bytes(slot->meta, slot->meta_len);
    py::bytes body = slot->body == nullptr ? py::bytes() : py::bytes(slot->body, slot->body_len);
    return py::make_tuple(slot->code == rcx::kOK, meta, body);
}

// WakePipe is one thread's pipe for synchronous calls: Go writes the id of
// each finished slot to it, and the thread sleeps in poll() meanwhile.
class WakePipe {
  public:
    WakePipe() {
        int fds[2];
        // Go waits with a sleep, not a blocked thread, when the pipe is full.
#ifdef __linux__
        // pipe2 sets close-on-exec at once, so a fork and exec in another
        // thread cannot inherit the pipe.
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
#else
        if (pipe(fds) != 0) return;
        for (int fd : fds) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
#endif
        read_fd_ = fds[0];
        write_fd_ = fds[1];
    }
    ~WakePipe() {
        if (read_fd_ >= 0) close(read_fd_);
        if (write_fd_ >= 0) close(write_fd_);
    }
    WakePipe(const WakePipe &) = delete;
    WakePipe &operator=(const WakePipe &) = delete;

    bool ok() const { return read_fd_ >= 0; }
    int write_fd() const { return write_fd_; }

    // Ids read by one call that belong to another on the same thread: a
    // signal handler can make a call while an interrupted one waits.
    std::unordered_set<uint64_t> others;

    // Sleep until ids arrive or timeout_ms passes, and return the ids read.
    // A signal ends the sleep early, so its handler runs at once.
    std::vector<uint64_t> read_ids(int timeout_ms) {
        std::vector<uint64_t> ids;
        pollfd p{read_fd_, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return ids;
        char buf[512];
        for (;;) {
            std::memcpy(buf, partial_, pending_);
            ssize_t n = read(read_fd_, buf + pending_, sizeof buf - pending_);
            if (n <= 0) break;
            size_t have = pending_ + static_cast<size_t>(n);
            size_t whole = have - have % sizeof(uint64_t);
            for (size_t off = 0; off < whole; off += sizeof(uint64_t)) {
                uint64_t id;
                std::memcpy(&id, buf + off, sizeof id);
                ids.push_back(id);
            }
            pending_ = have - whole;
            std::memcpy(partial_, buf + whole, pending_);
        }
        return ids;
    }

  private:
    int read_fd_ = -1;
    int write_fd_ = -1;
    // The start of a record that a read split, kept for the next read.
    char partial_[sizeof(uint64_t)] = {};
    size_t pending_ = 0;
};

// The calling thread's wake pipe. A pipe is abandoned, never closed, when
// Go may still write to it after its call returned.
struct ThreadPipe {
    WakePipe *pipe = nullptr;
    ~ThreadPipe() { delete pipe; }
};

ThreadPipe &thread_pipe() {
    thread_local ThreadPipe current;
    return current;
}

// Return the calling thread's wake pipe, making it on first use. Called
// with the GIL held, so failure raises OSError.
WakePipe &wake_pipe() {
    ThreadPipe &current = thread_pipe();
    if (current.pipe == nullptr) {
        auto *pipe = new WakePipe();
        if (!pipe->ok()) {
            int error = errno;
            delete pipe;
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            throw py::error_already_set();
        }
        current.pipe = pipe;
    }
    return *current.pipe;
}

// Calls owns the slots of one synchronous call and waits for them. When a
// signal handler raises, it cancels what still runs and waits up to
// kCancelWaitMs. Slots still running after that are left to Go with the
// thread's pipe, so Go never writes to freed memory or a closed pipe.
class Calls {
  public:
    Calls(const rcx::Api &api, WakePipe &pipe, uintptr_t client) : api_(api), pipe_(pipe), client_(client) {}
    Calls(const Calls &) = delete;
    Calls &operator=(const Calls &) = delete;
    ~Calls() {
        if (running_.empty()) {
            for (auto &entry : slots_) free_slot(entry.second);
            return;
        }
        ReleaseGil release;
        for (uint64_t id : running_) {
            mark_cancelled(slots_.at(id));
            api_.slot_cancel(id);
        }
        using Clock = std::chrono::steady_clock;
        const Clock::time_point end = Clock::now() + std::chrono::milliseconds(kCancelWaitMs);
        while (!running_.empty()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
            if (left <= 0) break;
            collect(static_cast<int>(left) + 1);
        }
        if (running_.empty()) {
            for (auto &entry : slots_) free_slot(entry.second);
            return;
        }
        // NOTE: an operation that ignores cancellation (a hanging credential
        // helper) keeps its slot and this thread's pipe, which both leak. The
        // thread makes a new pipe for its next call.
        if (thread_pipe().pipe == &pipe_) thread_pipe().pipe = nullptr;
        for (auto &entry : slots_) {
            if (running_.count(entry.first) == 0) free_slot(entry.second);
        }
    }

    void submit(const std::string &request) {
        rcx::Slot *slot = ::submit(api_, client_, request, pipe_.write_fd());
        order_.push_back(slot->id);
        slots_[slot->id] = slot;
        running_.insert(slot->id);
    }

    // Wait in slices with the GIL released until every slot has finished,
    // running signal handlers between slices. With spin set, a lone call
    // first spins (see SpinWait).
    void wait(bool spin) {
        using Clock = std::chrono::steady_clock;
        const Clock::time_point start = Clock::now();
        Clock::time_point finished;
        SpinWait &spinner = spin_wait();
        const bool lone = spin && order_.size() == 1;
        bool spun = false;
        for (;;) {
            {
                ReleaseGil release;
                // A signal that arrives while spinning interrupts no poll(),
                // so a spin that ends without the result is followed by a
                // signal check before the first slice.
                bool gave_up = false;
                if (lone && !spun) {
                    spun = true;
                    gave_up = spinner.wait(client_, slots_.at(order_.front())) == SpinWait::Outcome::kGaveUp;
                }
                const Clock::time_point end = Clock::now() + std::chrono::milliseconds(kWaitSliceMs);
                while (!gave_up && !running_.empty()) {
                    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
                    if (left <= 0 || !collect(static_cast<int>(left) + 1)) break;
                }
                finished = Clock::now();
            }
            if (running_.empty()) {
                if (lone) spinner.record(client_, spinner.within_budget(finished - start));
                return;
            }
            if (PyErr_CheckSignals() != 0) {
                if (lone) spinner.record(client_, false);
                throw py::error_already_set();
            }
        }
    }

    // Results in submission order.
    std::vector<py::tuple> results() const {
        std::vector<py::tuple> out;
        out.reserve(order_.size());
        for (uint64_t id : order_) out.push_back(slot_result(slots_.at(id)));
        return out;
    }

  private:
    // Read finished ids for up to timeout_ms. Returns false when none arrived.
    bool collect(int timeout_ms) {
        bool found = false;
        for (auto it = pipe_.others.begin(); it != pipe_.others.end();) {
            if (running_.erase(*it) != 0) {
                found = true;
                it = pipe_.others.erase(it);
            } else {
                ++it;
            }
        }
        if (found) return true;
        std::vector<uint64_t> ids = pipe_.read_ids(timeout_ms);
        for (uint64_t id : ids) {
            if (running_.erase(id) == 0) pipe_.others.insert(id);
        }
        return !ids.empty();
    }

    const rcx::Api &api_;
    WakePipe &pipe_;
    const uintptr_t client_;
    std::vector<uint64_t> order_;
    std::unordered_map<uint64_t, rcx::Slot *> slots_;
    std::unordered_set<uint64_t> running_;
};

// Run requests concurrently to completion and return their results in
// input order. Called with the GIL, which it releases while it waits. With
// spin set, a single request may spin before it sleeps.
std::vector<py::tuple> run_requests(const rcx::Api &api, uintptr_t client, const std::vector<std::string> &requests, bool spin) {
    Calls calls(api, wake_pipe(), client);
    for (const std::string &raw : requests) calls.submit(raw);
    calls.wait(spin);
    return calls.results();
}

// Slots started by start() and not yet collected by finish(), by id.
std::mutex started_mutex;
std::unordered_map<uint64_t, rcx::Slot *> started;

// Start a request and return its id at once. Go writes the id to
// notify_fd when it finishes, and finish() then returns the result.
py::object start(uintptr_t client, py::bytes request, int notify_fd) {
    if (rcx::forked_after_load()) return py::none();
    const rcx::Api &api = rcx::api();
    rcx::Slot *slot = submit(api, client, request, notify_fd);
    std::lock_guard<std::mutex> lock(started_mutex);
    started[slot->id] = slot;
    return py::int_(slot->id);
}

// Return the result of a request whose id arrived on its notify_fd, and
// free it.
py::tuple finish(uint64_t id) {
    if (rcx::forked_after_load()) return forked_result();
    rcx::Slot *slot;
    {
        std::lock_guard<std::mutex> lock(started_mutex);
        auto found = started.find(id);
        if (found == started.end()) throw std::invalid_argument("no started operation has id " + std::to_string(id));
        if (!slot_done(found->second)) throw std::invalid_argument("operation " + std::to_string(id) + " has not finished");
        slot = found->second;
        started.erase(found);
    }
    py::tuple result = slot_result(slot);
    free_slot(slot);
    return result;
}

void cancel(uint64_t id) {
    if (rcx::forked_after_load()) return;
    const rcx::Api &api = rcx::api();
    ReleaseGil release;
    {
        // The lock keeps finish() from freeing the slot while the flag is set.
        std::lock_guard<std::mutex> lock(started_mutex);
        auto found = started.find(id);
        if (found == started.end()) return;
        mark_cancelled(found->second);
    }
    api.slot_cancel(id);
}

// Free the slot of an id read from a notify pipe, if start() made it.
void free_started(uint64_t id) {
    rcx::Slot *slot = nullptr;
    {
        std::lock_guard<std::mutex> lock(started_mutex);
        auto found = started.find(id);
        if (found == started.end()) return;
        slot = found->second;
        started.erase(found);
    }
    free_slot(slot);
}

// Take over a notify pipe whose owner is gone, with the ids still due on
// it and any partial record already read. A detached thread frees each
// slot as its id arrives, then closes the pipe, so Go never writes to a
// closed descriptor.
void abandon(const std::vector<uint64_t> &ids, int read_fd, int write_fd, const std::string &pending) {
    if (rcx::forked_after_load()) {
        close(read_fd);
        close(write_fd);
        return;
    }
    std::thread([ids, read_fd, write_fd, pending]() {
        std::unordered_set<uint64_t> due(ids.begin(), ids.end());
        std::string data = pending;
        char buf[4096];
        while (!due.empty()) {
            pollfd p{read_fd, POLLIN, 0};
            if (poll(&p, 1, -1) < 0) {
                // Go may still write to the pipe, so a failing poll is retried.
                if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            // Not an open pipe with a writer (only a caller's bug does this):
            // give up without closing, since the numbers may belong to others.
            if (p.revents & POLLNVAL) return;
            ssize_t n = read(read_fd, buf, sizeof buf);
            if (n == 0) return;
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            data.append(buf, static_cast<size_t>(n));
            size_t whole = data.size() - data.size() % sizeof(uint64_t);
            for (size_t off = 0; off < whole; off += sizeof(uint64_t)) {
                uint64_t id;
                std::memcpy(&id, data.data() + off, sizeof id);
                if (due.erase(id) != 0) free_started(id);
            }
            data.erase(0, whole);
        }
        close(read_fd);
        close(write_fd);
    }).detach();
}

int64_t native_operations() { return live_slots.load(); }

void forget_client(uintptr_t client) { spin_wait().forget(client); }

void load_settings() { rcx::set_spin_budget_us(spin_wait().budget_us()); }

py::tuple spin_stats() {
    const SpinWait &spin = spin_wait();
    // A forked child makes no calls; the counts it copied are the parent's.
    if (rcx::forked_after_load()) return py::make_tuple(spin.budget_us(), 0, 0, 0, 0);
    int64_t polls = 0, polls_finished = 0;
    if (rcx::loaded()) rcx::api().submit_poll_stats(&polls, &polls_finished);
    return py::make_tuple(spin.budget_us(), spin.waits(), spin.finished(), polls, polls_finished);
}

#else
// Windows (NOTE: never run here): calls start operations through
// rcx_op_start and wait inside Go. AsyncClient uses a thread per call there
// and never calls start(), finish() or cancel().

// Operation frees a Go operation on every path out of call(). Freeing
// cancels the operation if it still runs and waits for its goroutine, so
// the wait happens without the GIL.
class Operation {
  public:
    Operation(const rcx::Api &api, uintptr_t handle) : handle(handle), api_(api) {}
    Operation(const Operation &) = delete;
    Operation &operator=(const Operation &) = delete;
    ~Operation() {
        ReleaseGil release;
        api_.op_free(handle);
    }

    const uintptr_t handle;

  private:
    const rcx::Api &api_;
};


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
                ReleaseGil release;
                code = api.op_wait(op, kWaitSliceMs);
            }
            if (code == rcx::kOK) break;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        }
    }
}

std::vector<py::tuple> run_requests(const rcx::Api &api, uintptr_t client, const std::vector<std::string> &requests, bool /* spin: calls here never spin */) {
    std::vector<std::unique_ptr<Operation>> ops;
    std::vector<uintptr_t> handles;
    ops.reserve(requests.size());
    for (const std::string &raw : requests) {
        ops.push_back(std::make_unique<Operation>(api, api.op_start(client, raw.data(), raw.size())));
        handles.push_back(ops.back()->handle);
    }
    wait_all(api, handles);
    std::vector<py::tuple> results;
    for (uintptr_t handle : handles) results.push_back(result_of(api, handle));
    return results;
}

py::object start(uintptr_t, py::bytes, int) { throw std::runtime_error("start() is not available on Windows"); }
py::tuple finish(uint64_t) { throw std::runtime_error("finish() is not available on Windows"); }
void cancel(uint64_t) { throw std::runtime_error("cancel() is not available on Windows"); }
void abandon(const std::vector<uint64_t> &, int, int, const std::string &) {
    throw std::runtime_error("abandon() is not available on Windows");
}
int64_t native_operations() { return 0; }

void forget_client(uintptr_t) {}

void load_settings() {}

// Calls on Windows sleep in op_wait and never spin.
py::tuple spin_stats() { return py::make_tuple(0, 0, 0, 0, 0); }
#endif

// Run one request to completion and return (ok, envelope, body).
py::tuple call(uintptr_t client, const std::string &request) {
    if (rcx::forked_after_load()) return forked_result();
    return run_requests(rcx::api(), client, {request}, true).front();
}

// Run many requests concurrently under one release of the GIL and return
// their results in input order.
py::list call_many(uintptr_t client, const std::vector<std::string> &requests) {
    py::list results;
    if (rcx::forked_after_load()) {
        for (size_t i = 0; i < requests.size(); i++) results.append(forked_result());
        return results;
    }
    for (py::tuple &result : run_requests(rcx::api(), client, requests, false)) results.append(std::move(result));
    return results;
}

void preload() {
    if (!rcx::forked_after_load()) rcx::api();
}

py::tuple stats() {
    if (!rcx::loaded() || rcx::forked_after_load()) return py::make_tuple(0, 0, 0);
    int64_t clients = 0, operations = 0, procs = 0;
    rcx::api().stats(&clients, &operations, &procs);
    return py::make_tuple(clients, operations + native_operations(), procs);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Internal binding to the regclient Go library; use the regclient_ext package instead.";
    load_settings();
    // Sub-interpreters run their own atexit handlers when they end, which
    // must not stop the main interpreter's threads.
    if (PyInterpreterState_Get() == PyInterpreterState_Main()) {
        exit_guard().reset();
        py::module_::import("atexit").attr("register")(py::cpp_function([] { exit_guard().begin_exit(); }));
    }
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
    m.def("abandon", &abandon, py::arg("operations"), py::arg("read_fd"), py::arg("write_fd"), py::arg("pending"),
          "Hand over a notify pipe (both ends) and the operations still due on it; they are freed as they finish.");
    m.def("preload", &preload, "Load the Go library now instead of on the first call.");
    m.def("stats", &stats, "Return the numbers of live clients and operations, and Go's GOMAXPROCS (0 before loading).");
    m.def("spin_stats", &spin_stats,
          "Return the spin budget in microseconds, the calls that spun, those whose result arrived while spinning, "
          "Go's polls for a next request and those that found one.");
}
