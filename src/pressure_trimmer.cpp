// zeropool: the pressure_trimmer's thread. It polls two descriptors: the
// pressure source (the PSI trigger or the injected fd) and the read end of a
// pipe of its own, which the destructor writes to stop it at once.
#include <zeropool/pressure_trimmer.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace zeropool {

namespace {

constexpr const char* what_prefix = "zeropool::pressure_trimmer: ";

[[noreturn]] void throw_errno(int error, const char* what) {
    throw std::system_error(error, std::system_category(), std::string(what_prefix) + what);
}

/// Closes a descriptor it owns (-1: none), retrying nothing: after close()
/// the descriptor is released whatever it returns.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    int get() const noexcept { return fd_; }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) static_cast<void>(::close(fd_));
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

/// A pipe whose ends are closed on exec.
void make_wake_pipe(unique_fd& read_end, unique_fd& write_end) {
    int fds[2];
#if defined(__linux__)
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
#else
    if (::pipe(fds) != 0) throw_errno(errno, "pipe");
#endif
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
#if !defined(__linux__)
    static_cast<void>(::fcntl(fds[0], F_SETFD, FD_CLOEXEC));
    static_cast<void>(::fcntl(fds[1], F_SETFD, FD_CLOEXEC));
#endif
}

/// What draining a readable source found.
enum class drained { data, nothing, end };

/// Reads and discards what `fd` has to read, without blocking: a read follows
/// a poll() that reported the fd readable, and a full buffer is read again
/// only when poll() still reports data. An eventfd's read needs 8 bytes.
drained drain(int fd) noexcept {
    char buf[512];
    bool any = false;
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return any ? drained::data : drained::nothing; // EAGAIN: empty; others: the next poll() tells
        }
        if (n == 0) return any ? drained::data : drained::end;
        any = true;
        if (static_cast<std::size_t>(n) < sizeof buf) return drained::data;
        pollfd more{fd, POLLIN, 0};
        int r;
        do {
            r = ::poll(&more, 1, 0);
        } while (r < 0 && errno == EINTR);
        if (r <= 0 || (more.revents & POLLIN) == 0) return drained::data;
    }
}

} // namespace

struct pressure_trimmer::worker {
    sharded_buffer_resource* pool = nullptr;
    int source = -1;         // the fd the thread polls
    short events = 0;        // what it polls the source for
    unique_fd owned_source;  // the PSI trigger; empty for an injected source
    unique_fd wake_read;     // the thread's stop signal...
    unique_fd wake_write;    // ...written by the destructor
    std::atomic<std::size_t> trims{0};
    std::thread thread;

    void run() noexcept;
    void start(); // creates the pipe and the thread
};

void pressure_trimmer::worker::run() noexcept {
    pollfd fds[2] = {{source, events, 0}, {wake_read.get(), POLLIN, 0}};
    for (;;) {
        fds[0].revents = 0;
        fds[1].revents = 0;
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return; // EFAULT, EINVAL, ENOMEM: stop watching
        }
        if (fds[1].revents != 0) return; // the destructor asks to stop
        const short got = fds[0].revents;
        // An error first: a PSI trigger that is gone reports POLLERR with POLLPRI.
        if ((got & (POLLERR | POLLNVAL)) != 0) return;
        if ((got & events) != 0) {
            if ((got & events & (POLLIN | POLLRDNORM)) != 0 && drain(source) == drained::end) return;
            pool->trim();
            trims.fetch_add(1, std::memory_order_release); // after the trim: its effects come with the count
            continue;
        }
        if ((got & POLLHUP) != 0) return; // end of input, nothing left to read
    }
}

void pressure_trimmer::worker::start() {
    make_wake_pipe(wake_read, wake_write);
    thread = std::thread([this] { run(); });
}

pressure_trimmer::pressure_trimmer(sharded_buffer_resource& pool, pressure_trigger trigger) {
    using std::chrono::microseconds;
    if (trigger.window < microseconds(500000) || trigger.window > microseconds(10000000))
        throw std::invalid_argument(std::string(what_prefix) + "the window must be within [500 ms, 10 s]");
    if (trigger.stall <= microseconds(0) || trigger.stall > trigger.window)
        throw std::invalid_argument(std::string(what_prefix) + "the stall must be within (0, window]");
#if defined(__linux__)
    auto w = std::make_unique<worker>();
    w->pool = &pool;
    w->owned_source.reset(::open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (w->owned_source.get() < 0) throw_errno(errno, "cannot open /proc/pressure/memory");
    // At most "full 10000000 10000000": the ranges are checked above. The
    // kernel replaces the last byte written with a NUL: write the NUL too
    // (else "some 150000 2000000" would be read as a 200 ms window).
    char text[40];
    const int length = std::snprintf(text, sizeof text, "%s %lld %lld", trigger.full ? "full" : "some",
                                     static_cast<long long>(trigger.stall.count()),
                                     static_cast<long long>(trigger.window.count()));
    const std::size_t bytes = static_cast<std::size_t>(length) + 1;
    ssize_t written;
    do {
        written = ::write(w->owned_source.get(), text, bytes);
    } while (written < 0 && errno == EINTR);
    if (written < 0) throw_errno(errno, "the kernel refused the trigger written to /proc/pressure/memory");
    if (static_cast<std::size_t>(written) != bytes)
        throw_errno(EIO, "short write of the trigger to /proc/pressure/memory");
    w->source = w->owned_source.get();
    w->events = POLLPRI;
    w->start();
    worker_ = std::move(w);
#else
    static_cast<void>(pool);
    throw_errno(ENOSYS, "memory pressure (PSI) is Linux only");
#endif
}

pressure_trimmer::pressure_trimmer(sharded_buffer_resource& pool, int event_fd, short events) {
    if (event_fd < 0) throw std::invalid_argument(std::string(what_prefix) + "negative file descriptor");
    if (events == 0) throw std::invalid_argument(std::string(what_prefix) + "no poll() event to wait for");
    if (::fcntl(event_fd, F_GETFD) < 0) throw_errno(errno, "the pressure source is not an open descriptor");
    auto w = std::make_unique<worker>();
    w->pool = &pool;
    w->source = event_fd;
    w->events = events;
    w->start();
    worker_ = std::move(w);
}

pressure_trimmer::~pressure_trimmer() {
    const char stop = 1;
    ssize_t written;
    do {
        written = ::write(worker_->wake_write.get(), &stop, 1);
    } while (written < 0 && errno == EINTR);
    // A pipe with one byte to carry is not full; should the write fail all
    // the same, closing the write end wakes the thread too (POLLHUP). The
    // thread may have stopped already (its source is gone).
    if (written != 1) worker_->wake_write.reset();
    worker_->thread.join();
}

std::size_t pressure_trimmer::trims() const noexcept { return worker_->trims.load(std::memory_order_acquire); }

} // namespace zeropool
