// zeropool: io_uring_registry (include/zeropool/io_uring_registry.hpp).
//
// The registry talks to the kernel with io_uring_register(2) directly, on its
// own duplicate of each ring's descriptor: a sparse table
// (IORING_REGISTER_BUFFERS2 with IORING_RSRC_REGISTER_SPARSE, Linux 5.19) and
// one-slot updates (IORING_REGISTER_BUFFERS_UPDATE; an empty iovec clears a
// slot). The duplicate keeps the ring's file alive while the registry uses it,
// so a ring closed without detach() cannot be mistaken for whatever file
// takes its descriptor number next.
//
// Invariants, under mutex_: a block in blocks_ holds a slot that is not in
// free_slots_, and is registered at that slot in every ring of rings_
// attached by this process; a slot in free_slots_ is empty in every such
// ring. A block enters blocks_ after its registrations and leaves it before
// its unregistrations, so a lock-free find() never returns a slot that is
// being filled or cleared (src/registered_blocks.hpp). A request in flight
// keeps the pages it uses pinned even when its slot is cleared (the kernel
// holds a reference to the buffer until the request completes), but a block
// is only cleared when it leaves the pool, when no I/O may use it.
//
// fork(): mutex_ is held across io_uring_register calls, which pin or unpin
// pages and take long. pthread_atfork handlers lock every live registry's
// mutex_ before the fork and unlock it after, so a child never inherits it
// held by a thread that does not exist there, and no registry is half-way
// through a change of blocks_ in the child.
#include <zeropool/io_uring_registry.hpp>

#include "registered_blocks.hpp"

#include <liburing.h>
#include <linux/io_uring.h>

#include <cassert>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <pthread.h>
#include <stdexcept>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace zeropool {

namespace {

int ring_register(int fd, unsigned opcode, const void* arg, unsigned nr) noexcept {
    const long r = ::syscall(__NR_io_uring_register, fd, opcode, arg, nr);
    return r < 0 ? -errno : static_cast<int>(r);
}

// Registers an empty table of `slots` buffers in the ring behind `fd`.
int register_sparse_table(int fd, unsigned slots) noexcept {
    io_uring_rsrc_register reg{};
    reg.nr = slots;
    reg.flags = IORING_RSRC_REGISTER_SPARSE;
    return ring_register(fd, IORING_REGISTER_BUFFERS2, &reg, sizeof(reg));
}

// Puts [p, p + bytes) into slot `index` of the ring behind `fd`; p == nullptr
// and bytes == 0 clear the slot. Returns 0 or -errno.
int update_slot(int fd, int index, void* p, std::size_t bytes) noexcept {
    iovec iov{p, bytes};
    io_uring_rsrc_update2 up{};
    up.offset = static_cast<__u32>(index);
    up.data = reinterpret_cast<__u64>(&iov);
    up.nr = 1;
    const int r = ring_register(fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
    return r == 1 ? 0 : (r < 0 ? r : -EIO);
}

unsigned clamp_table(unsigned n) noexcept {
    if (n == 0) return 1;
    return n > io_uring_registry::max_table_size ? io_uring_registry::max_table_size : n;
}

// Every live registry, linked through their live_prev_ / live_next_, under
// live_mutex, for the fork handlers. Constant-initialised and never
// destroyed: no guard variable a fork could catch half-way (a child would
// wait for it forever), and a registry with static storage duration may
// outlive any other static object.
pthread_mutex_t live_mutex = PTHREAD_MUTEX_INITIALIZER;
io_uring_registry* live_first = nullptr;
// Whether this thread's prepare handler holds the locks. The handlers may be
// installed twice in a child forked just after pthread_atfork returned and
// before pthread_once recorded it (the child runs the once routine again);
// the flag makes the second call of each handler on the forking thread do
// nothing. Per thread: glibc may run two threads' fork handlers at once, and
// the second must wait for live_mutex.
thread_local bool held_for_fork = false;
pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
int handlers_error = 0; // what pthread_atfork returned; written once, under handlers_once

} // namespace

// Lock order: live_mutex, then each registry's mutex_. Nothing that holds a
// registry's mutex_ takes another lock of zeropool's or calls upstream (only
// attach() may call malloc under it, whose fork locks glibc takes after every
// handler), so these handlers cannot deadlock with the pool's, whichever
// runs first.
void io_uring_registry::lock_all_for_fork() noexcept {
    if (held_for_fork) return;
    ::pthread_mutex_lock(&live_mutex);
    for (io_uring_registry* r = live_first; r != nullptr; r = r->live_next_) r->mutex_.lock();
    held_for_fork = true;
}

void io_uring_registry::unlock_all_after_fork() noexcept {
    if (!held_for_fork) return;
    held_for_fork = false;
    for (io_uring_registry* r = live_first; r != nullptr; r = r->live_next_) r->mutex_.unlock();
    ::pthread_mutex_unlock(&live_mutex);
}

// pthread_once, not a function-local static: glibc runs a once routine again
// in a child forked while it was in progress, where a C++ guard would wait.
void io_uring_registry::install_fork_handlers() noexcept {
    handlers_error = ::pthread_atfork(lock_all_for_fork, unlock_all_after_fork, unlock_all_after_fork);
}

// At load time, before main and its threads: a fork() already running when
// the first registry is built (glibc 2.36, and older releases with the
// backport, run only the handlers found when the fork began) would otherwise leave that registry's lock out of it.
// The constructor also installs them, for a registry built by an earlier
// static initialiser; what remains is a dlopen() of the library racing a
// fork() on another thread.
const bool io_uring_registry::fork_handlers_at_load_ =
    (::pthread_once(&handlers_once, install_fork_handlers), true);

io_uring_registry::io_uring_registry(std::pmr::memory_resource* upstream, unsigned table_size)
    : upstream_(upstream), table_size_(clamp_table(table_size)),
      blocks_(std::make_unique<detail::registered_blocks>(table_size_)) {
    if (upstream == nullptr) throw std::invalid_argument("zeropool::io_uring_registry: null upstream resource");
    free_slots_.reserve(table_size_);
    for (unsigned i = table_size_; i > 0; --i) free_slots_.push_back(static_cast<int>(i - 1)); // 0 on top
    rings_.reserve(4);
    // Last: a constructor that throws leaves nothing in the list.
    ::pthread_once(&handlers_once, install_fork_handlers);
    if (handlers_error != 0) throw std::bad_alloc(); // ENOMEM, pthread_atfork's only error
    ::pthread_mutex_lock(&live_mutex);
    live_next_ = live_first;
    if (live_first != nullptr) live_first->live_prev_ = this;
    live_first = this;
    ::pthread_mutex_unlock(&live_mutex);
}

io_uring_registry::~io_uring_registry() {
    assert(blocks_->size() == 0 && "zeropool::io_uring_registry destroyed while blocks from it are in use");
    ::pthread_mutex_lock(&live_mutex);
    if (live_prev_ != nullptr) live_prev_->live_next_ = live_next_; else live_first = live_next_;
    if (live_next_ != nullptr) live_next_->live_prev_ = live_prev_;
    ::pthread_mutex_unlock(&live_mutex);
    const int self = static_cast<int>(::getpid());
    for (const ring_entry& r : rings_) {
        if (r.pid == self) ring_register(r.fd, IORING_UNREGISTER_BUFFERS, nullptr, 0);
        ::close(r.fd);
    }
}

int io_uring_registry::attach(::io_uring& ring) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const ring_entry& r : rings_)
        if (r.user_fd == ring.ring_fd) return -EBUSY;
    const int fd = ::fcntl(ring.ring_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (const int r = register_sparse_table(fd, table_size_); r < 0) {
        ::close(fd);
        return r;
    }
    try {
        rings_.push_back(ring_entry{ring.ring_fd, fd, static_cast<int>(::getpid())});
    } catch (...) { // std::bad_alloc
        ring_register(fd, IORING_UNREGISTER_BUFFERS, nullptr, 0);
        ::close(fd);
        return -ENOMEM;
    }
    // The blocks registered so far: a block this ring refuses leaves every ring.
    for (std::size_t pos = 0; pos < blocks_->size();) {
        const detail::registered_blocks::entry b = blocks_->at(pos);
        if (update_slot(fd, b.index, reinterpret_cast<void*>(b.start), b.bytes) == 0) {
            ++pos;
            continue;
        }
        ++stats_.refusals;
        forget(pos); // the next block moves to pos
    }
    return 0;
}

void io_uring_registry::detach(::io_uring& ring) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = rings_.begin(); it != rings_.end(); ++it) {
        if (it->user_fd != ring.ring_fd) continue;
        if (it->pid == static_cast<int>(::getpid())) ring_register(it->fd, IORING_UNREGISTER_BUFFERS, nullptr, 0);
        ::close(it->fd);
        rings_.erase(it);
        return;
    }
}

fixed_buffer io_uring_registry::find(const void* p, std::size_t bytes) const noexcept {
    return fixed_buffer{blocks_->find(reinterpret_cast<std::uintptr_t>(p), bytes)};
}

io_uring_registry_stats io_uring_registry::stats() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    io_uring_registry_stats s = stats_;
    s.registered_blocks = blocks_->size();
    s.attached_rings = rings_.size();
    return s;
}

bool io_uring_registry::register_everywhere(void* p, std::size_t bytes, int index) noexcept {
    const int self = static_cast<int>(::getpid());
    for (std::size_t i = 0; i < rings_.size(); ++i) {
        if (rings_[i].pid != self) continue;
        if (update_slot(rings_[i].fd, index, p, bytes) == 0) continue;
        for (std::size_t j = 0; j < i; ++j) // undo: the block is in no ring
            if (rings_[j].pid == self) update_slot(rings_[j].fd, index, nullptr, 0);
        return false;
    }
    return true;
}

void io_uring_registry::unregister_everywhere(int index) noexcept {
    const int self = static_cast<int>(::getpid());
    for (const ring_entry& r : rings_)
        if (r.pid == self) update_slot(r.fd, index, nullptr, 0);
}

void io_uring_registry::forget(std::size_t pos) noexcept {
    const detail::registered_blocks::entry b = blocks_->at(pos);
    blocks_->erase(pos); // before the rings: find() no longer returns the slot
    unregister_everywhere(b.index);
    free_slots_.push_back(b.index); // capacity reserved: no allocation
    stats_.registered_bytes -= b.bytes;
    ++stats_.unregistrations;
}

void* io_uring_registry::do_allocate(std::size_t bytes, std::size_t alignment) {
    void* p = upstream_->allocate(bytes, alignment); // may throw: nothing changed
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes == 0 || bytes > max_buffer_bytes || free_slots_.empty()) {
        ++stats_.refusals;
        return p;
    }
    const int index = free_slots_.back();
    if (!register_everywhere(p, bytes, index)) {
        ++stats_.refusals;
        return p;
    }
    // After the rings: find() returns the slot only once every ring has the
    // block. A free slot means room in blocks_ (both hold table_size_).
    blocks_->insert({reinterpret_cast<std::uintptr_t>(p), bytes, index});
    free_slots_.pop_back();
    stats_.registered_bytes += bytes;
    ++stats_.registrations;
    return p;
}

void io_uring_registry::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    // A block of 0 bytes was never registered, and its address may be the
    // start of a registered block (an upstream may return the same address
    // for 0 bytes and for the next block): no lookup.
    if (bytes != 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::size_t pos = blocks_->position_of(reinterpret_cast<std::uintptr_t>(p));
        if (pos != blocks_->size()) {
            assert(blocks_->at(pos).bytes == bytes && "zeropool::io_uring_registry: deallocate with another size");
            forget(pos);
        }
    }
    upstream_->deallocate(p, bytes, alignment);
}

bool io_uring_registry::do_is_equal(const std::pmr::memory_resource& other) const noexcept { return this == &other; }

} // namespace zeropool
