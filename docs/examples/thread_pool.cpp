// Example: one zeropool pool shared by the workers of a small thread pool.
// Each task takes a 1 MiB buffer with get(), fills and checksums it, and gives
// it back with put(). The pool is thread-safe; each worker's own cache serves
// most requests without a lock, and blocks freed on one thread are reused on
// others through the shards. Exit status 0 when every task's result is right.
#include <zeropool/zeropool.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <utility>
#include <vector>

namespace {

/// A fixed set of worker threads running queued tasks. The destructor runs the
/// tasks still queued, then joins the workers.
class thread_pool {
public:
    explicit thread_pool(unsigned workers) {
        for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { run(); });
    }
    ~thread_pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        ready_.notify_all();
        for (auto& t : threads_) t.join();
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    void submit(std::function<void()> task) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            tasks_.push(std::move(task));
        }
        ready_.notify_one();
    }

private:
    void run() {
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
                if (tasks_.empty()) return; // stopping, nothing left
                task = std::move(tasks_.front());
                tasks_.pop();
            }
            task();
        }
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    std::queue<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

constexpr std::size_t buffer_size = 1 << 20;
constexpr int task_count = 200;

/// What task `i` computes: the sum of the bytes it writes.
std::uint64_t fill_and_sum(zeropool::buffer& buf, int i) {
    std::uint64_t sum = 0;
    for (std::size_t k = 0; k < buf.size(); k += 512) {
        const auto v = static_cast<unsigned char>((k / 512 + static_cast<std::size_t>(i)) % 256);
        buf[k] = std::byte{v};
        sum += v;
    }
    return sum;
}

} // namespace

int main() {
    zeropool::sharded_buffer_resource pool; // must outlive the workers' use of it
    std::vector<std::uint64_t> results(task_count);
    {
        thread_pool workers(4);
        for (int i = 0; i < task_count; ++i) {
            workers.submit([&pool, &results, i] {
                zeropool::buffer buf = pool.get(buffer_size);
                results[static_cast<std::size_t>(i)] = fill_and_sum(buf, i);
                pool.put(std::move(buf));
            });
        }
    } // runs every task, joins the workers; their caches go back to the pool

    int wrong = 0;
    zeropool::buffer check = pool.get(buffer_size);
    for (int i = 0; i < task_count; ++i)
        if (results[static_cast<std::size_t>(i)] != fill_and_sum(check, i)) ++wrong;
    pool.put(std::move(check));

    const zeropool::pool_stats s = pool.stats();
    std::printf("thread_pool: %d tasks on 4 workers, %llu upstream allocations, %llu served from the pool\n",
                task_count, static_cast<unsigned long long>(s.upstream_allocations),
                static_cast<unsigned long long>(s.thread_cache_hits + s.shard_hits));
    if (wrong != 0) {
        std::fprintf(stderr, "thread_pool: %d wrong results\n", wrong);
        return 1;
    }
    if (s.upstream_allocations >= static_cast<std::uint64_t>(task_count)) {
        std::fprintf(stderr, "thread_pool: the pool did not reuse its buffers\n");
        return 1;
    }
    return 0;
}
