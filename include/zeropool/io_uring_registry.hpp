// zeropool/io_uring_registry.hpp: pooled blocks registered with io_uring as
// fixed buffers (opt-in: the zeropool::uring target, built when liburing is
// found; Linux only).
//
// An io_uring_registry is a std::pmr::memory_resource meant to be the
// upstream of a sharded_buffer_resource. Every block the pool takes from it
// is registered, in every ring attached to it, at the same index of a sparse
// fixed-buffer table; a block given back is unregistered before it goes to
// the registry's own upstream. Registration happens when a block enters the
// pool and when it leaves it, never per I/O: the pool keeps its blocks, so a
// loop that takes and gives back buffers keeps reading into registered
// memory, and the kernel skips pinning and unpinning its pages for every
// READ_FIXED / WRITE_FIXED.
//
//   zeropool::page_resource pages;
//   zeropool::io_uring_registry registry(&pages);
//   zeropool::sharded_buffer_resource pool(config, &registry);
//   registry.attach(ring);                  // each thread's ring, once
//   void* p = pool.allocate(n, 4096);        // O_DIRECT: page-aligned
//   if (zeropool::fixed_buffer f = registry.find(p, n))
//       io_uring_prep_read_fixed(sqe, fd, p, n, offset, f.index);
//   else
//       io_uring_prep_read(sqe, fd, p, n, offset); // not registered: a plain read
//
// A block is not registered (find() says so, and the block works as plain
// memory) when it is larger than the kernel's 1 GiB per buffer, when the
// table is full, or when a ring refuses it (RLIMIT_MEMLOCK: each ring counts
// the pinned pages of its registrations against the limit unless the process
// has CAP_IPC_LOCK). A block is registered in every attached ring or in none.
//
// Threads: attach each thread's ring to the one registry; a block has the
// same index in every ring. Every attach and every block entering or leaving
// the pool calls io_uring_register on every ring, under the registry's lock:
// the rings must not be set up with IORING_SETUP_SINGLE_ISSUER (register
// from another thread is refused there). find() takes no lock and writes no
// shared memory, so lookups on many threads do not slow each other.
//
// fork(): the registry's lock is taken around fork() (pthread_atfork), as the
// pool's are, so a child forked while another thread registers a block can
// use the pool and the registry. In the child, rings the parent attached
// are left alone (they are the parent's); attach rings of the child's own.
#ifndef ZEROPOOL_IO_URING_REGISTRY_HPP
#define ZEROPOOL_IO_URING_REGISTRY_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <vector>

struct io_uring; // liburing's ring

namespace zeropool {

namespace detail {
class registered_blocks; // src/registered_blocks.hpp
} // namespace detail

/// Where a registered block sits in the fixed-buffer table of every attached
/// ring: what io_uring_prep_read_fixed / io_uring_prep_write_fixed need.
struct fixed_buffer {
    /// The buffer index, or -1 when the block is not registered (use a plain
    /// read or write).
    int index = -1;
    /// True when the block is registered.
    explicit operator bool() const noexcept { return index >= 0; }
};

/// Counters of an io_uring_registry (a snapshot).
struct io_uring_registry_stats {
    std::size_t registered_blocks = 0; ///< blocks registered now
    std::size_t registered_bytes = 0;  ///< their bytes
    std::uint64_t registrations = 0;   ///< blocks registered so far
    std::uint64_t unregistrations = 0; ///< blocks unregistered so far
    std::uint64_t refusals = 0;        ///< blocks left plain (too large, table full, a ring refused)
    std::size_t attached_rings = 0;    ///< rings attached now
};

/// A memory resource that registers the blocks it hands out with every
/// attached io_uring ring (see the file comment). Thread-safe.
class io_uring_registry final : public std::pmr::memory_resource {
public:
    /// The kernel's limit on the buffers of one table.
    static constexpr unsigned max_table_size = 16384;
    /// The kernel's limit on the bytes of one registered buffer.
    static constexpr std::size_t max_buffer_bytes = std::size_t{1} << 30;

    /// Effects: a registry of `table_size` slots (clamped to [1,
    /// max_table_size]) over `upstream`, which provides the blocks.
    /// Throws: std::invalid_argument on a null upstream; std::bad_alloc (also
    /// when the fork() handlers cannot be installed: pthread_atfork's ENOMEM).
    explicit io_uring_registry(std::pmr::memory_resource* upstream, unsigned table_size = 1024);
    /// Requires: every block allocated from the registry has been given back
    /// (destroy the pool first). Detaches every ring.
    ~io_uring_registry() override;

    io_uring_registry(const io_uring_registry&) = delete;
    io_uring_registry& operator=(const io_uring_registry&) = delete;

    /// Effects: registers a sparse table of the registry's size in `ring`
    /// and every block registered now at its index; a block the ring refuses
    /// is unregistered from every ring. The registry keeps its own
    /// descriptor of the ring, so the ring stays valid for it until detach().
    /// Returns: 0, or -errno: -EBUSY when the ring already has a buffer table
    /// (or is attached); otherwise what io_uring_register(2) or fcntl(2)
    /// returned.
    int attach(::io_uring& ring) noexcept;
    /// Effects: unregisters the table from `ring` and forgets it; nothing
    /// when it is not attached. In a fork() child, a ring attached by the
    /// parent is only forgotten (its table is the parent's).
    void detach(::io_uring& ring) noexcept;

    /// Returns: the registration of the block holding [p, p + bytes), or
    /// {-1} when no registered block holds it all. Lock-free: a binary
    /// search of the registered blocks; safe on any thread, concurrently
    /// with anything but the registry's destruction.
    fixed_buffer find(const void* p, std::size_t bytes) const noexcept;

    /// Returns: the counters now.
    io_uring_registry_stats stats() const noexcept;

    /// Returns: the resource that provides the blocks.
    std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

private:
    struct ring_entry {
        int user_fd; // the ring's own descriptor: how detach() finds it
        int fd;      // the registry's duplicate of it
        int pid;     // the process that attached it
    };

    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

    // Under mutex_.
    bool register_everywhere(void* p, std::size_t bytes, int index) noexcept;
    void unregister_everywhere(int index) noexcept;
    // Takes the block at `pos` of blocks_ out of the table, unregisters it
    // from every ring, frees its slot and counts it.
    void forget(std::size_t pos) noexcept;

    // fork(): the pthread_atfork handlers lock every live registry's mutex_
    // before the fork and unlock them after it, in the parent and the child.
    static void lock_all_for_fork() noexcept;
    static void unlock_all_after_fork() noexcept;
    static void install_fork_handlers() noexcept; // once per process
    static const bool fork_handlers_at_load_;     // installs them at load time

    std::pmr::memory_resource* upstream_;
    const unsigned table_size_;
    mutable std::mutex mutex_;                          // writers of everything below; stats()
    std::unique_ptr<detail::registered_blocks> blocks_; // registered blocks by address; find() reads it lock-free
    std::vector<int> free_slots_;                       // table indices not in use
    std::vector<ring_entry> rings_;
    io_uring_registry_stats stats_;
    io_uring_registry* live_prev_ = nullptr; // the list of live registries, for fork()
    io_uring_registry* live_next_ = nullptr;
};

} // namespace zeropool

#endif // ZEROPOOL_IO_URING_REGISTRY_HPP
