// zeropool: the process-wide registry of pools and thread caches, thread exit
// and fork handling. See src/thread_registry.hpp for who
// touches what and the lock order.
#include "thread_registry.hpp"

#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

#include <pthread.h>

namespace zeropool::detail {

/// The caches a thread owns, one per pool it has used. Owner thread only.
struct thread_records {
    std::unordered_map<std::uint64_t, thread_cache*> by_pool;
    std::size_t sweep_at = 64; // size at which dead records are collected next
};

namespace {

struct registry {
    std::mutex mutex;
    registered_pool* pools = nullptr; // live pools, under mutex
    std::atomic<std::uint32_t> next_thread_index{0};
    std::atomic<std::uint64_t> next_pool_id{1};
};

// Built on first use and never destroyed: threads may exit (and pools may be
// destroyed) during static destruction, after any ordinary static is gone.
registry& reg() noexcept {
    alignas(registry) static unsigned char storage[sizeof(registry)];
    static registry* r = ::new (static_cast<void*>(storage)) registry();
    return *r;
}

// The calling thread's record, for the slow paths in this file, taken out of
// line so that g++'s UBSan null check tests a returned reference rather than
// the flags of a relaxed TLS `add` (docs/reliability.md, "What was
// found"). One call, on paths that already lock or allocate.
ZEROPOOL_NOINLINE thread_locals& this_thread_locals() noexcept { return tls; }

void clear_slots_of(thread_locals& t, const thread_cache* c) noexcept {
    for (tls_slot& s : t.slots)
        if (s.cache == c) s = tls_slot{0, nullptr};
    if (t.mru.cache == c) t.mru = tls_slot{0, nullptr};
}

void unlink_cache(registered_pool& pool, thread_cache& c) noexcept {
    if (c.prev_) c.prev_->next_ = c.next_; else pool.caches = c.next_;
    if (c.next_) c.next_->prev_ = c.prev_;
    c.prev_ = c.next_ = nullptr;
    --pool.cache_count;
}

// The owner thread is done with the dead cache `c`: frees it, unless the
// pool's destructor is still emptying it (then the destructor frees it).
// Registry mutex held.
void let_go_of_dead_cache(thread_cache* c) noexcept {
    if (c->draining_) c->orphaned_ = true;
    else delete c;
}

// Frees the records of pools that have been destroyed. Amortised O(1) per
// record creation: runs when the table has doubled since the last sweep.
void sweep_dead_records(thread_locals& t) noexcept {
    thread_records& r = *t.records;
    if (r.by_pool.size() < r.sweep_at) return;
    {
        std::lock_guard<std::mutex> lock(reg().mutex);
        for (auto it = r.by_pool.begin(); it != r.by_pool.end();) {
            thread_cache* c = it->second;
            if (c->dead_) {
                clear_slots_of(t, c);
                let_go_of_dead_cache(c);
                it = r.by_pool.erase(it);
            } else {
                ++it;
            }
        }
    }
    r.sweep_at = r.by_pool.size() * 2 > 64 ? r.by_pool.size() * 2 : 64;
}

// Runs once per thread that used a pool, from a thread_local destructor (the
// main thread's too, at exit). Hands every live cache's blocks back to its
// pool; later calls on this thread bypass the caches.
void on_thread_exit() noexcept {
    thread_locals& t = this_thread_locals();
    t.phase = thread_phase::torn_down;
    for (tls_slot& s : t.slots) s = tls_slot{0, nullptr};
    t.mru = tls_slot{0, nullptr};
    thread_records* r = t.records;
    t.records = nullptr;
    if (r == nullptr) return;
    {
        std::lock_guard<std::mutex> lock(reg().mutex);
        for (auto& entry : r->by_pool) {
            thread_cache& c = *entry.second;
            if (c.dead_) {
                let_go_of_dead_cache(&c);
                entry.second = nullptr;
                continue;
            }
            registered_pool& pool = *c.pool_;
            unlink_cache(pool, c);
            pool.retired_hits += c.hits();
            pool.retired_fits += c.fits().read();
            pool.exiting_flushes.fetch_add(1, std::memory_order_relaxed);
        }
    }
    // Not under the mutex: flushing may call upstream. Each pool stays alive
    // until its exiting_flushes count drops back (see unregister_pool).
    for (auto& entry : r->by_pool) {
        thread_cache* c = entry.second;
        if (c == nullptr) continue;
        registered_pool& pool = *c->pool_;
        pool.flush_exiting(*c);
        pool.exiting_flushes.fetch_sub(1, std::memory_order_release);
        delete c;
    }
    delete r;
}

struct exit_handler {
    exit_handler() noexcept {}
    ~exit_handler() { on_thread_exit(); }
    exit_handler(const exit_handler&) = delete;
    exit_handler& operator=(const exit_handler&) = delete;
};

void arm_exit_handler() {
    // A function-local thread_local is constructed when control first passes
    // here, which registers its destructor for this thread's exit.
    static thread_local exit_handler handler;
    (void)handler;
}

// Before fork(): the registry mutex, every live cache's lock (no thread is
// in a slow-path section or reclaiming), then each pool's own locks.
void fork_prepare() noexcept {
    registry& r = reg();
    r.mutex.lock();
    for (registered_pool* p = r.pools; p; p = p->next) {
        for (thread_cache* c = p->caches; c; c = c->next_) c->lock().lock();
        p->lock_for_fork();
    }
}

void fork_parent() noexcept {
    registry& r = reg();
    for (registered_pool* p = r.pools; p; p = p->next) {
        p->unlock_after_fork();
        for (thread_cache* c = p->caches; c; c = c->next_) c->lock().unlock();
    }
    r.mutex.unlock();
}

void fork_child() noexcept {
    registry& r = reg();
    for (registered_pool* p = r.pools; p; p = p->next) {
        p->unlock_after_fork();
        for (thread_cache* c = p->caches; c; c = c->next_) {
            c->lock().unlock();
            // The other threads do not exist in the child. One that was in
            // the middle of an operation (announced, not ended) may have left
            // its slots half moved (take() keeping the age order: one block in
            // two slots): no reclaimer may take from that cache, ever.
            if (c->in_operation()) c->abandoned_ = true;
        }
        // Threads that were handing blocks back do not exist in the child.
        p->exiting_flushes.store(0, std::memory_order_relaxed);
    }
    r.mutex.unlock();
}

} // namespace

thread_cache* find_or_create_cache(registered_pool& pool, std::uint32_t capacity) noexcept {
    thread_locals& t = this_thread_locals();
    if (t.phase == thread_phase::torn_down) return nullptr;
    try {
        if (t.records == nullptr) {
            arm_exit_handler();
            t.records = new thread_records();
            t.phase = thread_phase::live;
        }
        auto& table = t.records->by_pool;
        auto found = table.find(pool.id);
        thread_cache* c = nullptr;
        if (found != table.end()) {
            c = found->second;
        } else {
            sweep_dead_records(t);
            auto inserted = table.emplace(pool.id, nullptr).first;
            c = new (std::nothrow) thread_cache(pool, capacity);
            if (c == nullptr) {
                table.erase(inserted);
                return nullptr;
            }
            inserted->second = c;
            std::lock_guard<std::mutex> lock(reg().mutex);
            c->next_ = pool.caches;
            if (pool.caches) pool.caches->prev_ = c;
            pool.caches = c;
            ++pool.cache_count;
        }
        t.slots[pool.id & (thread_locals::slot_count - 1)] = tls_slot{pool.id, c};
        t.mru = tls_slot{pool.id, c};
        return c;
    } catch (...) { // std::bad_alloc from the record table: bypass the cache
        return nullptr;
    }
}

thread_cache* find_cache(const registered_pool& pool) noexcept {
    if (thread_cache* c = find_cache_fast(pool.id)) return c;
    thread_records* r = this_thread_locals().records;
    if (r == nullptr) return nullptr;
    auto found = r->by_pool.find(pool.id);
    return found == r->by_pool.end() ? nullptr : found->second;
}

std::uint32_t thread_index() noexcept {
    thread_locals& t = this_thread_locals();
    if (t.index_plus_one == 0)
        t.index_plus_one = reg().next_thread_index.fetch_add(1, std::memory_order_relaxed) + 1;
    return t.index_plus_one - 1;
}

std::uint64_t new_pool_id() noexcept {
    return reg().next_pool_id.fetch_add(1, std::memory_order_relaxed);
}

void register_pool(registered_pool& pool) noexcept {
    static const int installed = pthread_atfork(fork_prepare, fork_parent, fork_child);
    (void)installed;
    registry& r = reg();
    std::lock_guard<std::mutex> lock(r.mutex);
    pool.next = r.pools;
    if (r.pools) r.pools->prev = &pool;
    r.pools = &pool;
}

thread_cache* unregister_pool(registered_pool& pool) noexcept {
    registry& r = reg();
    thread_cache* dead = nullptr;
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        if (pool.prev) pool.prev->next = pool.next; else r.pools = pool.next;
        if (pool.next) pool.next->prev = pool.prev;
        dead = pool.caches; // keeps its links: from now on the caller's list
        for (thread_cache* c = dead; c; c = c->next_) {
            c->dead_ = true;
            c->draining_ = true;
        }
        pool.caches = nullptr;
        pool.cache_count = 0;
    }
    while (pool.exiting_flushes.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    return dead;
}

void release_dead_cache(thread_cache* cache) noexcept {
    std::lock_guard<std::mutex> lock(reg().mutex);
    if (cache->orphaned_) {
        delete cache;
    } else {
        cache->draining_ = false;
        cache->prev_ = cache->next_ = nullptr;
    }
}

registry_lock::registry_lock() noexcept { reg().mutex.lock(); }
registry_lock::~registry_lock() { reg().mutex.unlock(); }

cache_totals sum_caches(const registered_pool& pool) noexcept {
    cache_totals t;
    std::lock_guard<std::mutex> lock(reg().mutex);
    for (const thread_cache* c = pool.caches; c; c = c->next_) {
        t.hits += c->hits();
        t.blocks += c->count();
        t.bytes += c->held();
        t.fits += c->fits().read();
    }
    t.hits += pool.retired_hits;
    t.fits += pool.retired_fits;
    return t;
}

} // namespace zeropool::detail
