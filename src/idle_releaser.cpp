// zeropool: the idle_releaser's thread.
#include <zeropool/idle_releaser.hpp>

#include "pool_core.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace zeropool {

struct idle_releaser::worker {
    std::mutex mutex;
    std::condition_variable wake;
    bool stop = false; // under mutex
    detail::pool_core* core = nullptr;
    std::thread thread;
};

idle_releaser::idle_releaser(sharded_buffer_resource& pool) {
    const std::size_t period_ms = pool.config().idle_release_ms;
    if (period_ms == pool_config::no_idle_release) return;
    worker_ = std::make_unique<worker>();
    worker_->core = pool.core_.get();
    const auto interval = std::chrono::milliseconds(period_ms / detail::pool_core::ticks_per_period);
    worker* w = worker_.get();
    w->core->attach_releaser(+1); // the pool's own calls leave release by demand to this thread
    w->thread = std::thread([w, &pool, interval] {
        std::unique_lock<std::mutex> lock(w->mutex);
        while (!w->wake.wait_for(lock, interval, [w] { return w->stop; })) {
            lock.unlock();
            static_cast<void>(pool.release_idle());
            lock.lock();
        }
    });
}

idle_releaser::~idle_releaser() {
    if (!worker_) return;
    {
        std::lock_guard<std::mutex> lock(worker_->mutex);
        worker_->stop = true;
    }
    worker_->wake.notify_one();
    worker_->thread.join();
    worker_->core->attach_releaser(-1);
}

} // namespace zeropool
