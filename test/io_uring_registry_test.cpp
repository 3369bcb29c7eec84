// io_uring_registry: blocks of a pool registered as fixed buffers in every
// attached ring, read into with READ_FIXED from an O_DIRECT file, and
// unregistered when they leave the pool; refusals leave plain blocks that
// still work; threads with their own rings; fork.
//
// The file lives in the system's temporary directory for files that outlive
// a reboot (/var/tmp): O_DIRECT needs a file system that supports it, which
// tmpfs does not. On a kernel without io_uring (or with it disabled), every
// case is skipped and says why.
#define BOOST_TEST_MODULE io_uring_registry
#include <boost/test/unit_test.hpp>

#include <zeropool/io_uring_registry.hpp>
#include <zeropool/page_resource.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#include "../src/registered_blocks.hpp"
#include "test_support.hpp"

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/capability.h>
#include <memory_resource>
#include <new>
#include <random>
#include <string>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace zp = zeropool;

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t file_bytes = 8 * mib;

unsigned char file_byte(std::size_t offset) { return static_cast<unsigned char>((offset * 131u + 7u) >> 3); }

// Whether this kernel lets the process set up a ring.
bool io_uring_works() {
    io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) != 0) return false;
    io_uring_queue_exit(&ring);
    return true;
}

boost::test_tools::assertion_result uring_available(boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result r(io_uring_works());
    r.message() << "io_uring_queue_init failed: io_uring is not available here";
    return r;
}

// A file of known bytes, opened for O_DIRECT reads; removed at the end.
class direct_file {
public:
    direct_file() {
        const char* dir = std::getenv("ZEROPOOL_DIRECT_DIR");
        path_ = std::string(dir != nullptr ? dir : "/var/tmp") + "/zeropool_uring_test_" + std::to_string(::getpid());
        std::vector<unsigned char> bytes(file_bytes);
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = file_byte(i);
        const int w = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
        BOOST_TEST_REQUIRE(w >= 0);
        BOOST_TEST_REQUIRE(::write(w, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
        ::fsync(w);
        ::close(w);
        fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECT);
        BOOST_TEST_REQUIRE(fd_ >= 0, "O_DIRECT open of " << path_ << ": " << std::strerror(errno));
    }
    ~direct_file() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    int fd() const noexcept { return fd_; }

private:
    std::string path_;
    int fd_ = -1;
};

struct ring_guard {
    io_uring ring;
    ring_guard() { BOOST_TEST_REQUIRE(io_uring_queue_init(32, &ring, 0) == 0); }
    ~ring_guard() { io_uring_queue_exit(&ring); }
};

// One read of `bytes` at `offset` into p: READ_FIXED with `index` when it is
// >= 0, else a plain READ. Returns the completion's result.
int read_once(io_uring& ring, int fd, void* p, std::size_t bytes, std::size_t offset, int index) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (index >= 0)
        io_uring_prep_read_fixed(sqe, fd, p, static_cast<unsigned>(bytes), static_cast<__u64>(offset), index);
    else
        io_uring_prep_read(sqe, fd, p, static_cast<unsigned>(bytes), static_cast<__u64>(offset));
    if (io_uring_submit(&ring) != 1) return -EIO;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring, &cqe) != 0) return -EIO;
    const int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

bool holds_file_bytes(const void* p, std::size_t bytes, std::size_t offset) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < bytes; i += 509)
        if (b[i] != file_byte(offset + i)) return false;
    return b[bytes - 1] == file_byte(offset + bytes - 1);
}

// An upstream that gives a block of 0 bytes the address of the block it will
// give next, as a bump allocator may: blocks of new_delete_resource, one
// made ahead.
class same_address_for_zero_bytes final : public std::pmr::memory_resource {
public:
    ~same_address_for_zero_bytes() override {
        if (next_ != nullptr) ::operator delete(next_, std::align_val_t{page});
    }

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        BOOST_TEST_REQUIRE(alignment <= page);
        if (next_ == nullptr) next_ = ::operator new(next_bytes, std::align_val_t{page});
        if (bytes == 0) return next_;
        BOOST_TEST_REQUIRE(bytes <= next_bytes);
        return std::exchange(next_, nullptr);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
        if (bytes != 0) ::operator delete(p, std::align_val_t{page});
    }
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }

    static constexpr std::size_t next_bytes = 64 * 1024;
    void* next_ = nullptr;
};

} // namespace

// The address table alone (no kernel involved): lookups by any address and
// length, in a table kept sorted through inserts and erases at every place.
BOOST_AUTO_TEST_CASE(the_address_table_finds_the_block_holding_a_range, *boost::unit_test::timeout(30)) {
    zp::detail::registered_blocks t(8);
    BOOST_TEST(t.find(1000, 1) == -1); // empty
    // Blocks [1000, 1100) #5, [1100, 1200) #3 (adjacent), [5000, 5010) #7,
    // inserted out of order.
    t.insert({5000, 10, 7});
    t.insert({1000, 100, 5});
    t.insert({1100, 100, 3});
    BOOST_TEST(t.size() == 3u);
    BOOST_TEST(t.at(0).start == 1000u);
    BOOST_TEST(t.at(1).start == 1100u);
    BOOST_TEST(t.at(2).start == 5000u);
    BOOST_TEST(t.find(999, 1) == -1);    // before the first
    BOOST_TEST(t.find(1000, 100) == 5);  // all of a block
    BOOST_TEST(t.find(1050, 50) == 5);   // its tail
    BOOST_TEST(t.find(1099, 2) == -1);   // across two adjacent blocks
    BOOST_TEST(t.find(1100, 1) == 3);
    BOOST_TEST(t.find(1000, 101) == -1); // past its end
    BOOST_TEST(t.find(1200, 1) == -1);   // the gap
    BOOST_TEST(t.find(5009, 1) == 7);
    BOOST_TEST(t.find(5010, 1) == -1);   // after the last
    BOOST_TEST(t.position_of(1100) == 1u);
    BOOST_TEST(t.position_of(1101) == t.size()); // only starts are found
    t.erase(t.position_of(1100));
    BOOST_TEST(t.find(1150, 1) == -1);
    BOOST_TEST(t.find(1050, 1) == 5);
    BOOST_TEST(t.find(5005, 5) == 7);
    // Fill to capacity and empty again, erasing from the front.
    for (std::uintptr_t i = 0; t.size() < 8; ++i) t.insert({10000 + 100 * i, 50, static_cast<int>(10 + i)});
    BOOST_TEST(t.full());
    for (std::uintptr_t i = 0; i < 6; ++i) BOOST_TEST(t.find(10000 + 100 * i + 49, 1) == static_cast<int>(10 + i));
    BOOST_TEST(t.find(10000 + 100 * 6, 1) == -1); // only six fitted
    while (t.size() > 0) t.erase(0);
    BOOST_TEST(t.find(5000, 1) == -1);
}

BOOST_AUTO_TEST_SUITE(io_uring_registry_suite, *boost::unit_test::precondition(uring_available))

BOOST_AUTO_TEST_CASE(pooled_blocks_are_read_into_with_read_fixed, *boost::unit_test::timeout(60)) {
    direct_file file;
    ring_guard r;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 64);
    BOOST_TEST(registry.attach(r.ring) == 0);
    BOOST_TEST(registry.attach(r.ring) == -EBUSY);
    {
        zp::sharded_buffer_resource pool(&registry);
        const std::size_t sizes[] = {page, 64 * 1024, mib};
        std::vector<int> seen;
        for (std::size_t n : sizes) {
            void* p = pool.allocate(n, page);
            const zp::fixed_buffer f = registry.find(p, n);
            BOOST_TEST_REQUIRE(static_cast<bool>(f));
            for (int s : seen) BOOST_TEST(s != f.index);
            seen.push_back(f.index);
            // Inside the block: the same index; past its end or outside: none.
            BOOST_TEST(registry.find(static_cast<char*>(p) + page / 2, page / 2).index == f.index);
            BOOST_TEST(!registry.find(static_cast<char*>(p) + 1, n + 64 * 1024));
            BOOST_TEST(read_once(r.ring, file.fd(), p, n, 2 * mib, f.index) == static_cast<int>(n));
            BOOST_TEST(holds_file_bytes(p, n, 2 * mib));
            pool.deallocate(p, n, page);
        }
        int on_stack = 0;
        BOOST_TEST(!registry.find(&on_stack, sizeof on_stack));
        // A block taken again from the pool is still registered: no call to
        // the kernel per I/O.
        const std::uint64_t registrations = registry.stats().registrations;
        void* p = pool.allocate(mib, page);
        BOOST_TEST(static_cast<bool>(registry.find(p, mib)));
        BOOST_TEST(read_once(r.ring, file.fd(), p, mib, 0, registry.find(p, mib).index) == static_cast<int>(mib));
        BOOST_TEST(holds_file_bytes(p, mib, 0));
        BOOST_TEST(registry.stats().registrations == registrations);
        pool.deallocate(p, mib, page);
    }
    registry.detach(r.ring);
    BOOST_TEST(registry.stats().attached_rings == 0u);
}

BOOST_AUTO_TEST_CASE(every_registered_block_is_unregistered_before_it_leaves, *boost::unit_test::timeout(60)) {
    direct_file file;
    ring_guard r;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 64);
    BOOST_TEST(registry.attach(r.ring) == 0);
    int index = -1;
    {
        zp::sharded_buffer_resource pool(&registry);
        void* kept = pool.allocate(mib, page);
        void* trimmed = pool.allocate(mib / 2, page);
        index = registry.find(trimmed, mib / 2).index;
        BOOST_TEST(index >= 0);
        pool.deallocate(trimmed, mib / 2, page);
        pool.trim(); // the idle block goes upstream: unregistered
        BOOST_TEST(registry.stats().registered_blocks == 1u);
        BOOST_TEST(registry.stats().unregistrations == 1u);
        // The kernel agrees: its slot is empty.
        std::vector<unsigned char> plain(mib + page);
        void* aligned = reinterpret_cast<void*>((reinterpret_cast<std::uintptr_t>(plain.data()) + page - 1) & ~(page - 1));
        BOOST_TEST(read_once(r.ring, file.fd(), aligned, page, 0, index) == -EFAULT);
        pool.deallocate(kept, mib, page); // cached; destroying the pool returns it
    }
    const zp::io_uring_registry_stats s = registry.stats();
    BOOST_TEST(s.registered_blocks == 0u);
    BOOST_TEST(s.registered_bytes == 0u);
    BOOST_TEST(s.registrations == s.unregistrations);
    BOOST_TEST(s.registrations == 2u);
    registry.detach(r.ring);
}

BOOST_AUTO_TEST_CASE(a_full_table_leaves_blocks_plain_and_they_still_work, *boost::unit_test::timeout(60)) {
    direct_file file;
    ring_guard r;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 2);
    BOOST_TEST(registry.attach(r.ring) == 0);
    {
        zp::sharded_buffer_resource pool(&registry);
        void* a = pool.allocate(page, page);
        void* b = pool.allocate(2 * page, page);
        void* c = pool.allocate(4 * page, page); // the table has 2 slots
        BOOST_TEST(static_cast<bool>(registry.find(a, page)));
        BOOST_TEST(static_cast<bool>(registry.find(b, 2 * page)));
        BOOST_TEST(!registry.find(c, 4 * page));
        BOOST_TEST(registry.stats().refusals == 1u);
        BOOST_TEST(read_once(r.ring, file.fd(), c, 4 * page, page, -1) == static_cast<int>(4 * page));
        BOOST_TEST(holds_file_bytes(c, 4 * page, page));
        pool.deallocate(a, page, page);
        pool.deallocate(b, 2 * page, page);
        pool.deallocate(c, 4 * page, page);
    }
    BOOST_TEST(registry.stats().registered_blocks == 0u);
    registry.detach(r.ring);
}

BOOST_AUTO_TEST_CASE(a_ring_attached_later_gets_the_blocks_registered_so_far, *boost::unit_test::timeout(60)) {
    direct_file file;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 16);
    zp::sharded_buffer_resource pool(&registry);
    void* p = pool.allocate(mib, page);
    const zp::fixed_buffer f = registry.find(p, mib);
    BOOST_TEST_REQUIRE(static_cast<bool>(f));
    ring_guard r;
    BOOST_TEST(registry.attach(r.ring) == 0);
    BOOST_TEST(read_once(r.ring, file.fd(), p, mib, 3 * mib, f.index) == static_cast<int>(mib));
    BOOST_TEST(holds_file_bytes(p, mib, 3 * mib));
    pool.deallocate(p, mib, page);
    pool.trim();
    registry.detach(r.ring);
}

// Each thread has its own ring, attached to the one registry: a block has
// the same index in every ring. A thread that exits detaches its ring; the
// blocks its cache held stay registered in the others.
BOOST_AUTO_TEST_CASE(threads_with_their_own_rings_share_the_table, *boost::unit_test::timeout(120)) {
    direct_file file;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 256);
    zp::sharded_buffer_resource pool(&registry);
    ring_guard main_ring;
    BOOST_TEST(registry.attach(main_ring.ring) == 0);
    constexpr int threads = 2;
    constexpr int rounds = 50;
    std::vector<int> failures(threads, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            io_uring ring;
            if (io_uring_queue_init(8, &ring, 0) != 0 || registry.attach(ring) != 0) {
                ++failures[static_cast<std::size_t>(t)];
                return;
            }
            for (int i = 0; i < rounds; ++i) {
                const std::size_t n = static_cast<std::size_t>(i % 3 + 1) * 64 * 1024;
                const std::size_t offset = static_cast<std::size_t>((i * 7 + t) % 64) * 64 * 1024;
                void* p = pool.allocate(n, page);
                const zp::fixed_buffer f = registry.find(p, n);
                if (!f || read_once(ring, file.fd(), p, n, offset, f.index) != static_cast<int>(n) ||
                    !holds_file_bytes(p, n, offset))
                    ++failures[static_cast<std::size_t>(t)];
                pool.deallocate(p, n, page);
            }
            registry.detach(ring);
            io_uring_queue_exit(&ring);
        });
    }
    for (std::thread& w : workers) w.join();
    for (int t = 0; t < threads; ++t) BOOST_TEST(failures[static_cast<std::size_t>(t)] == 0);
    BOOST_TEST(registry.stats().attached_rings == 1u);
    // The exited threads' blocks came back to the pool, registered: the main
    // thread's ring reads into them with the same indices.
    for (std::size_t n : {std::size_t{64} * 1024, std::size_t{128} * 1024, std::size_t{192} * 1024}) {
        void* p = pool.allocate(n, page);
        const zp::fixed_buffer f = registry.find(p, n);
        BOOST_TEST(static_cast<bool>(f));
        BOOST_TEST(read_once(main_ring.ring, file.fd(), p, n, 0, f.index) == static_cast<int>(n));
        BOOST_TEST(holds_file_bytes(p, n, 0));
        pool.deallocate(p, n, page);
    }
    pool.trim();
    BOOST_TEST(registry.stats().registered_blocks == 0u);
    registry.detach(main_ring.ring);
}

// find() takes no lock: it must give each block's own index, and nothing for
// a range no block holds, while other threads keep changing the table (which
// shifts the entries that a lookup reads). Under TSan, this is also the check
// that the lock-free reads race with nothing.
// No ring is attached, so that the table changes as fast as the writer can
// go (a ring adds a system call to every change); the lookups are the same.
BOOST_AUTO_TEST_CASE(find_is_exact_while_other_threads_change_the_table, *boost::unit_test::timeout(120)) {
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 1024);
    constexpr int readers = 2;
    constexpr int kept = 48;
    constexpr int rounds = 10000;
    std::atomic<int> readers_done{0};
    std::atomic<long> wrong{0};
    std::atomic<long> churned{0};
    // The writer: blocks of changing sizes enter and leave the table until
    // every reader is done.
    std::thread writer([&] {
        std::vector<std::pair<void*, std::size_t>> live;
        unsigned x = 12345;
        while (readers_done.load() < readers) {
            x = x * 1103515245u + 12345u;
            if (live.size() < 400 && (x >> 16) % 3 != 0) {
                const std::size_t n = page * ((x >> 8) % 8 + 1);
                live.emplace_back(registry.allocate(n, page), n);
            } else if (!live.empty()) {
                const std::size_t i = (x >> 4) % live.size();
                registry.deallocate(live[i].first, live[i].second, page);
                live[i] = live.back();
                live.pop_back();
            }
            churned.fetch_add(1);
        }
        for (auto& [p, n] : live) registry.deallocate(p, n, page);
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < readers; ++t) {
        threads.emplace_back([&, t] {
            std::vector<std::pair<char*, std::size_t>> mine;
            std::vector<int> index;
            for (int i = 0; i < kept; ++i) {
                const std::size_t n = page * static_cast<std::size_t>(i % 5 + 1);
                mine.emplace_back(static_cast<char*>(registry.allocate(n, page)), n);
                index.push_back(registry.find(mine.back().first, n).index);
                if (index.back() < 0) wrong.fetch_add(1);
            }
            for (int round = 0; round < rounds; ++round) {
                for (int i = 0; i < kept; ++i) {
                    auto [p, n] = mine[static_cast<std::size_t>(i)];
                    const int want = index[static_cast<std::size_t>(i)];
                    const std::size_t k = static_cast<std::size_t>(round + t) % n;
                    if (registry.find(p, n).index != want) wrong.fetch_add(1);
                    if (registry.find(p + k, n - k).index != want) wrong.fetch_add(1); // inside
                    if (registry.find(p, n + 1)) wrong.fetch_add(1);                 // past its end
                    if (registry.find(p + n - 1, 2)) wrong.fetch_add(1);             // across its end
                }
            }
            for (auto [p, n] : mine) registry.deallocate(p, n, page);
            readers_done.fetch_add(1);
        });
    }
    for (std::thread& th : threads) th.join();
    writer.join();
    BOOST_TEST(wrong.load() == 0);
    BOOST_TEST(churned.load() > 0);
    const zp::io_uring_registry_stats s = registry.stats();
    BOOST_TEST(s.registered_blocks == 0u);
    BOOST_TEST(s.registrations == s.unregistrations);
    BOOST_TEST(s.refusals == 0u);
}

// A fork() child shares the parent's ring (the same kernel object): what the
// child does with the pool must not change the parent's table.
BOOST_AUTO_TEST_CASE(a_fork_child_leaves_the_parents_table_alone, *boost::unit_test::timeout(60)) {
    direct_file file;
    ring_guard r;
    zp::io_uring_registry registry(std::pmr::new_delete_resource(), 16);
    zp::sharded_buffer_resource pool(&registry);
    BOOST_TEST(registry.attach(r.ring) == 0);
    void* p = pool.allocate(mib, page);
    const zp::fixed_buffer f = registry.find(p, mib);
    BOOST_TEST_REQUIRE(static_cast<bool>(f));
    const pid_t child = ::fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        // Give the parent's block back and return it upstream, take new ones.
        pool.deallocate(p, mib, page);
        pool.trim();
        void* q = pool.allocate(2 * mib, page);
        pool.deallocate(q, 2 * mib, page);
        pool.trim();
        std::_Exit(registry.stats().registered_blocks == 0 ? 0 : 1);
    }
    int status = 0;
    BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    // The parent's slot still holds its block.
    BOOST_TEST(read_once(r.ring, file.fd(), p, mib, mib, f.index) == static_cast<int>(mib));
    BOOST_TEST(holds_file_bytes(p, mib, mib));
    pool.deallocate(p, mib, page);
    pool.trim();
    registry.detach(r.ring);
}

namespace {

// What a fork() child does with the parent's pool and registry, in the test
// below; returns 0 or the number of the last thing that went wrong.
int child_uses_the_registry(zp::sharded_buffer_resource& pool, zp::io_uring_registry& registry, int fd) {
    // Blocks entering and leaving the pool: the registry's lock, each time.
    void* p = pool.allocate(512 * 1024, page);
    pool.deallocate(p, 512 * 1024, page);
    pool.trim();
    const std::uint64_t refused_before = registry.stats().refusals;
    // A ring of the child's own, and a block registered in it (or refused
    // and counted, under a low RLIMIT_MEMLOCK: then a plain read).
    io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) != 0) return 30;
    int code = 0;
    if (registry.attach(ring) != 0) code = 31;
    void* q = pool.allocate(mib, page);
    const zp::fixed_buffer f = registry.find(q, mib);
    if (!f && registry.stats().refusals == refused_before) code = 32;
    if (read_once(ring, fd, q, mib, 2 * mib, f.index) != static_cast<int>(mib) || !holds_file_bytes(q, mib, 2 * mib))
        code = 33;
    pool.deallocate(q, mib, page);
    pool.trim();
    if (registry.find(q, mib)) code = 34; // left the pool: no longer registered
    registry.detach(ring);
    io_uring_queue_exit(&ring);
    return code;
}

} // namespace

// Giving back a block of 0 bytes whose address is that of a registered block
// (the upstream's doing) leaves the registered block alone: 0 bytes are
// never registered, so there is nothing to unregister.
BOOST_AUTO_TEST_CASE(a_zero_byte_block_at_a_registered_address_leaves_it_registered, *boost::unit_test::timeout(60)) {
    direct_file file;
    ring_guard r;
    same_address_for_zero_bytes up;
    constexpr std::size_t bytes = 64 * 1024;
    {
        zp::io_uring_registry registry(&up, 8);
        BOOST_TEST_REQUIRE(registry.attach(r.ring) == 0);
        void* zero = registry.allocate(0, page);
        void* p = registry.allocate(bytes, page);
        BOOST_TEST_REQUIRE(zero == p);
        const zp::fixed_buffer f = registry.find(p, bytes);
        BOOST_TEST_REQUIRE(static_cast<bool>(f));
        registry.deallocate(zero, 0, page);
        BOOST_TEST(registry.find(p, bytes).index == f.index);
        BOOST_TEST(registry.stats().registered_blocks == 1u);
        BOOST_TEST(read_once(r.ring, file.fd(), p, bytes, page, f.index) == static_cast<int>(bytes));
        BOOST_TEST(holds_file_bytes(p, bytes, page));
        registry.deallocate(p, bytes, page);
        const zp::io_uring_registry_stats s = registry.stats();
        BOOST_TEST(s.registered_blocks == 0u);
        BOOST_TEST(s.registrations == s.unregistrations);
        registry.detach(r.ring);
    }
}

// fork() while other threads register and unregister blocks. The registry
// holds its lock across io_uring_register calls; a child forked while another
// thread held it would wait for it forever unless the lock is taken around
// fork(). The child uses the pool over the registry, and attaches a ring of
// its own.
//
// The parent's threads allocate from the registry itself, over page_resource
// (mmap): every round registers a block and unregisters it, and calls no
// malloc. The sanitizers' allocators are not fork-safe (fork_test.cpp says
// how), so a parent thread inside malloc at the fork could leave the child
// stuck in the sanitizer's allocator; the pool's trim() allocates, so the
// threads do not call it.
BOOST_AUTO_TEST_CASE(a_fork_while_threads_register_blocks_leaves_the_child_a_working_registry,
                     *boost::unit_test::timeout(300)) {
    direct_file file;
    ring_guard r;
    zp::page_resource pages;
    zp::io_uring_registry registry(&pages, 64);
    zp::sharded_buffer_resource pool(&registry);
    BOOST_TEST_REQUIRE(registry.attach(r.ring) == 0);
    pool.deallocate(pool.allocate(page, page), page, page); // the forking thread's cache, made before the forks

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> rounds{0};
    std::vector<std::thread> churn;
    for (int t = 0; t < 2; ++t)
        churn.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                void* p = registry.allocate(256 * 1024, page);
                registry.deallocate(p, 256 * 1024, page);
                rounds.fetch_add(1, std::memory_order_relaxed);
            }
        });
    BOOST_TEST(zeropool_test::eventually([&] { return rounds.load() >= 100; }, std::chrono::seconds(30)));
    const std::uint64_t registered_before = registry.stats().registrations;

    const int forks = zeropool_test::scaled(40, 15);
    std::mt19937 rng(1234);
    std::vector<zeropool_test::child_outcome> outcomes;
    for (int i = 0; i < forks; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 3000));
        const pid_t pid = ::fork();
        if (pid == 0) ::_exit(child_uses_the_registry(pool, registry, file.fd()));
        if (pid < 0) break;
        outcomes.push_back(zeropool_test::wait_for_child(pid, std::chrono::seconds(10)));
        if (outcomes.back().timed_out) break; // one deadlock is enough
    }
    stop.store(true);
    for (std::thread& t : churn) t.join();

    BOOST_TEST(outcomes.size() == static_cast<std::size_t>(forks));
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const zeropool_test::child_outcome& o = outcomes[i];
        BOOST_TEST_CONTEXT("child " << i) {
            BOOST_TEST(!o.timed_out, "child still running after 10 s: deadlocked after fork");
            BOOST_TEST(o.exited, "child did not exit (signal " << o.signal << ")");
            BOOST_TEST(o.exit_code == 0);
        }
    }
    // The threads kept registering blocks while the children were forked.
    BOOST_TEST(registry.stats().registrations > registered_before + static_cast<std::uint64_t>(forks));
    pool.trim();
    const zp::io_uring_registry_stats s = registry.stats();
    BOOST_TEST(s.registered_blocks == 0u);
    BOOST_TEST(s.registrations == s.unregistrations);
    registry.detach(r.ring);
}

// Without CAP_IPC_LOCK, a ring counts the pages it pins against
// RLIMIT_MEMLOCK: a block over the limit is refused and stays a plain buffer.
// Run in a child that drops the capability and lowers the limit.
BOOST_AUTO_TEST_CASE(a_block_over_the_memlock_limit_stays_plain, *boost::unit_test::timeout(60)) {
    direct_file file;
    const pid_t child = ::fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2]{};
        if (::syscall(SYS_capget, &header, data) != 0) std::_Exit(10);
        data[0].effective &= ~(1u << CAP_IPC_LOCK);
        data[0].permitted &= ~(1u << CAP_IPC_LOCK);
        if (::syscall(SYS_capset, &header, data) != 0) std::_Exit(11);
        const rlimit small{64 * 1024, 64 * 1024};
        if (::setrlimit(RLIMIT_MEMLOCK, &small) != 0) std::_Exit(12);
        io_uring ring;
        if (io_uring_queue_init(4, &ring, 0) != 0) std::_Exit(13);
        int code = 0;
        {
            zp::io_uring_registry registry(std::pmr::new_delete_resource(), 8);
            zp::sharded_buffer_resource pool(&registry);
            if (registry.attach(ring) != 0) std::_Exit(14);
            void* p = pool.allocate(mib, page);
            if (registry.find(p, mib)) code = 20; // should have been refused
            if (registry.stats().refusals != 1) code = 21;
            if (read_once(ring, file.fd(), p, mib, 0, -1) != static_cast<int>(mib) || !holds_file_bytes(p, mib, 0))
                code = 22;
            pool.deallocate(p, mib, page);
            registry.detach(ring);
        }
        io_uring_queue_exit(&ring);
        std::_Exit(code);
    }
    int status = 0;
    BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0, "child exit code " << WEXITSTATUS(status));
}

BOOST_AUTO_TEST_SUITE_END()
