// zeropool: a background thread that runs a pool's release by demand, for
// programs that may go quiet (the pool otherwise runs it on its own activity).
#ifndef ZEROPOOL_IDLE_RELEASER_HPP
#define ZEROPOOL_IDLE_RELEASER_HPP

#include <zeropool/sharded_buffer_resource.hpp>

#include <memory>

namespace zeropool {

/// While it lives, a thread of its own calls pool.release_idle() every
/// quarter of pool.config().idle_release_ms, so that idle blocks go back
/// upstream on time even when no thread calls the pool. Opt-in: a pool starts
/// no thread by itself.
///
///     zeropool::sharded_buffer_resource pool;
///     zeropool::idle_releaser releaser(pool); // declared after the pool
class idle_releaser {
public:
    /// Effects: starts the thread, unless release by demand is off
    /// (idle_release_ms == pool_config::no_idle_release). `pool` must
    /// outlive this object: destroy the releaser first.
    /// Throws: std::system_error when the thread cannot be started,
    /// std::bad_alloc.
    explicit idle_releaser(sharded_buffer_resource& pool);

    /// Effects: stops the thread and joins it; it is woken at once, not at
    /// its next period.
    ~idle_releaser();

    idle_releaser(const idle_releaser&) = delete;
    idle_releaser& operator=(const idle_releaser&) = delete;

private:
    struct worker;
    std::unique_ptr<worker> worker_;
};

} // namespace zeropool

#endif // ZEROPOOL_IDLE_RELEASER_HPP
