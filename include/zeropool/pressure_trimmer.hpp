// zeropool: a background thread that trims a pool when memory runs short, as
// the kernel reports it (Linux pressure stall information, PSI) or as the
// program's own signal says.
#ifndef ZEROPOOL_PRESSURE_TRIMMER_HPP
#define ZEROPOOL_PRESSURE_TRIMMER_HPP

#include <zeropool/sharded_buffer_resource.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace zeropool {

/// When the kernel should report memory pressure: when tasks were stalled on
/// memory for `stall` in total within a sliding `window`. The trigger written
/// to /proc/pressure/memory is "<some|full> <stall us> <window us>", e.g. the
/// default "some 150000 2000000" (150 ms of stall within 2 s).
struct pressure_trigger {
    /// Stall time within the window that raises an event; in (0, window].
    std::chrono::microseconds stall{150000};
    /// The sliding window; in [500 ms, 10 s]. For a process without
    /// CAP_SYS_RESOURCE the kernel (6.5 and later) also wants a multiple of
    /// 2 s, and reports at most one event per window; kernels before 6.5
    /// refuse triggers of such processes altogether.
    std::chrono::microseconds window{2000000};
    /// false: "some", at least one task stalled on memory; true: "full",
    /// every non-idle task stalled at the same time.
    bool full = false;
};

/// While it lives, a thread of its own waits for memory pressure and calls
/// pool.trim() on each event, so that the pool's idle blocks (in every tier,
/// parked threads' caches included) go back upstream when the system needs
/// memory. Opt-in: a pool starts no thread and opens no file by itself.
///
///     zeropool::sharded_buffer_resource pool;
///     zeropool::pressure_trimmer trimmer(pool); // declared after the pool
///
/// The pressure comes from the kernel (Linux PSI, 4.20 and later, built with
/// CONFIG_PSI and not booted with psi=0) or from an injected pressure source:
/// any file descriptor that poll() can watch (a pipe, an eventfd, a cgroup
/// v2 memory.pressure file with a trigger written by the caller, ...), for
/// tests and for programs with a pressure signal of their own.
class pressure_trimmer {
public:
    /// Effects: opens /proc/pressure/memory (O_RDWR | O_NONBLOCK |
    /// O_CLOEXEC), writes `trigger` to it and starts the thread, which polls
    /// the file for POLLPRI and calls pool.trim() on each event. When the
    /// kernel reports the trigger gone (POLLERR), the thread stops watching
    /// and the object does nothing more until it is destroyed. `pool` must
    /// outlive this object: destroy the trimmer first.
    /// Throws: std::invalid_argument if `trigger` is outside the ranges
    /// documented at pressure_trigger; std::system_error carrying the errno
    /// when PSI is not available (ENOENT: no /proc/pressure/memory, a kernel
    /// without CONFIG_PSI or booted with psi=0; ENOSYS: not Linux), when the
    /// kernel refuses the trigger (EINVAL: e.g. an unprivileged process and a
    /// window that is not a multiple of 2 s; EACCES or EPERM: the process may
    /// not install triggers), or when the thread cannot be started;
    /// std::bad_alloc.
    explicit pressure_trimmer(sharded_buffer_resource& pool, pressure_trigger trigger = {});

    /// An injected pressure source.
    /// Effects: starts the thread, which polls `event_fd` for `events` (e.g.
    /// POLLIN for a pipe or an eventfd, POLLPRI for a PSI trigger) and, on
    /// each event, reads and discards what is readable when POLLIN was
    /// reported (a pipe's bytes, an eventfd's counter: events that arrive
    /// together make one trim), then calls pool.trim(). When the fd reports
    /// an error (POLLERR, POLLNVAL) or end of input (POLLHUP or a read of 0
    /// bytes, with nothing left to read), the thread stops watching.
    /// Requires: `event_fd` stays open until this object is destroyed; the
    /// caller keeps it and closes it afterwards (it is not owned). When
    /// `events` includes POLLIN, the trimmer is the fd's only reader (a read
    /// happens only after poll() reports the fd readable, so a blocking fd
    /// does not block the thread, unless another reader takes the data
    /// first). `pool` outlives this object.
    /// Throws: std::invalid_argument if `event_fd` is negative or `events`
    /// is 0 (nothing to wait for); std::system_error carrying the errno if
    /// `event_fd` is not an open descriptor (EBADF) or the thread cannot be
    /// started; std::bad_alloc.
    pressure_trimmer(sharded_buffer_resource& pool, int event_fd, short events);

    /// Effects: stops the thread and joins it: it is woken at once (through
    /// a pipe of its own, not a timeout), whether or not an event came; a
    /// trim in progress completes first. Closes /proc/pressure/memory if
    /// this object opened it; an injected fd is left open.
    ~pressure_trimmer();

    pressure_trimmer(const pressure_trimmer&) = delete;
    pressure_trimmer& operator=(const pressure_trimmer&) = delete;

    /// Returns: how many times the thread has called pool.trim() and that
    /// call has returned (its effects are visible to the caller, e.g. in
    /// pool.stats()). For tests and for logging.
    /// Throws: nothing.
    std::size_t trims() const noexcept;

private:
    struct worker;
    std::unique_ptr<worker> worker_;
};

} // namespace zeropool

#endif // ZEROPOOL_PRESSURE_TRIMMER_HPP
