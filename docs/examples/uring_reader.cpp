// Example: an O_DIRECT reader with io_uring at queue depth 32, reading into
// pooled blocks that are registered as fixed buffers (zeropool::uring,
// include/zeropool/io_uring_registry.hpp).
//
// The registry is the pool's upstream: each block is registered in the ring
// once, when the pool first takes it, and stays registered while the pool
// keeps it. The loop below takes a block per read, issues READ_FIXED when
// registry.find() says the block is registered and a plain READ when it is
// not (a ring may refuse a block: RLIMIT_MEMLOCK, a full table), checks the
// data on completion, gives the block back and submits the next read. After
// the first few reads every block comes from the pool, already registered:
// registrations stay at about the queue depth however many reads run.
//
// The file (64 MiB of known bytes) lives in $ZEROPOOL_DIRECT_DIR, else
// /var/tmp: O_DIRECT needs a file system that supports it, which tmpfs did
// not before Linux 6.6 (so not /tmp, often a tmpfs). When the file system
// refuses O_DIRECT, the example says so and reads through the page cache (the
// registered buffers work the same). When the kernel refuses io_uring (too
// old, or disabled by io_uring_disabled), the example says so and exits 0
// without reading.
// Exit status 0 when every byte of both passes was read and checked.
#include <zeropool/io_uring_registry.hpp>
#include <zeropool/zeropool.hpp>

#include <liburing.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr std::size_t page = 4096; // O_DIRECT alignment of address, length and offset
constexpr std::size_t io_size = std::size_t{1} << 20;
constexpr std::size_t file_bytes = 64 * io_size;
constexpr unsigned queue_depth = 32;
constexpr int passes = 2;

// The file's contents: each 8-byte word holds a value derived from its offset,
// so a read landing at the wrong offset or a block left stale is caught.
std::uint64_t word_at(std::size_t offset) noexcept {
    return (static_cast<std::uint64_t>(offset / 8) + 1) * 0x9E3779B97F4A7C15ull;
}

void fill(unsigned char* p, std::size_t bytes, std::size_t offset) noexcept {
    for (std::size_t i = 0; i < bytes; i += 8) {
        const std::uint64_t w = word_at(offset + i);
        std::memcpy(p + i, &w, 8);
    }
}

// Every byte of [p, p + bytes) against the file's contents at `offset`.
bool holds_file_bytes(const unsigned char* p, std::size_t bytes, std::size_t offset) noexcept {
    for (std::size_t i = 0; i < bytes; i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, 8);
        if (w != word_at(offset + i)) return false;
    }
    return true;
}

/// Removes the file when it goes out of scope, whatever happens.
struct temp_file {
    std::string path;
    ~temp_file() { ::unlink(path.c_str()); }
};

/// The ring, set up and torn down with the example's scope. Declared before
/// the registry so that it outlives it (the registry detaches on destruction).
struct ring_guard {
    io_uring ring{};
    int status = 0; // io_uring_queue_init's result: 0 or -errno
    ring_guard() { status = io_uring_queue_init(queue_depth, &ring, 0); }
    ~ring_guard() {
        if (status == 0) io_uring_queue_exit(&ring);
    }
    ring_guard(const ring_guard&) = delete;
    ring_guard& operator=(const ring_guard&) = delete;
};

/// One read in flight: its block and where it reads.
struct request {
    unsigned char* data = nullptr;
    std::size_t offset = 0;
    bool fixed = false;
};

/// Writes the file in 1 MiB steps from one pooled block. Returns false on error.
bool write_file(const std::string& path, zeropool::sharded_buffer_resource& pool) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        std::fprintf(stderr, "uring_reader: create %s: %s\n", path.c_str(), std::strerror(errno));
        return false;
    }
    auto* buf = static_cast<unsigned char*>(pool.allocate(io_size, page));
    bool ok = true;
    for (std::size_t off = 0; ok && off < file_bytes; off += io_size) {
        fill(buf, io_size, off);
        ok = ::pwrite(fd, buf, io_size, static_cast<off_t>(off)) == static_cast<ssize_t>(io_size);
    }
    pool.deallocate(buf, io_size, page);
    ok = ok && ::fsync(fd) == 0; // O_DIRECT reads then find the bytes on the device
    if (!ok) std::fprintf(stderr, "uring_reader: write %s: %s\n", path.c_str(), std::strerror(errno));
    ::close(fd);
    return ok;
}

/// Opens `path` for reading with O_DIRECT when its file system accepts it
/// (checked with one read: some accept the flag at open and refuse the I/O),
/// else without. Returns the descriptor or -1.
int open_for_reading(const std::string& path, zeropool::sharded_buffer_resource& pool, bool& direct) {
    direct = true;
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
    if (fd >= 0) {
        void* probe = pool.allocate(page, page);
        const ssize_t got = ::pread(fd, probe, page, 0);
        const int err = errno;
        pool.deallocate(probe, page, page);
        if (got < 0 && err == EINVAL) {
            ::close(fd);
            fd = -1;
            errno = EINVAL;
        }
    }
    if (fd < 0 && errno == EINVAL) {
        direct = false;
        fd = ::open(path.c_str(), O_RDONLY);
    }
    if (fd < 0) std::fprintf(stderr, "uring_reader: open %s: %s\n", path.c_str(), std::strerror(errno));
    return fd;
}

} // namespace

int main() {
    ring_guard r;
    if (r.status != 0) {
        std::printf("uring_reader: io_uring_queue_init: %s; io_uring is not available here, nothing to show\n",
                    std::strerror(-r.status));
        return 0;
    }

    zeropool::page_resource pages;
    zeropool::io_uring_registry registry(&pages, 64); // room for the queue depth and the odd extra block
    if (const int rc = registry.attach(r.ring); rc != 0) {
        std::fprintf(stderr, "uring_reader: attach: %s\n", std::strerror(-rc));
        return 1;
    }
    // Declared after the registry: destroyed first, giving every block back
    // (each is unregistered on its way out) before the registry goes.
    zeropool::sharded_buffer_resource pool(&registry);

    const char* dir = std::getenv("ZEROPOOL_DIRECT_DIR");
    temp_file file{std::string(dir != nullptr && *dir != '\0' ? dir : "/var/tmp") + "/zeropool_uring_reader_" +
                   std::to_string(::getpid()) + ".dat"};
    if (!write_file(file.path, pool)) return 1;
    bool direct = false;
    const int fd = open_for_reading(file.path, pool, direct);
    if (fd < 0) return 1;
    if (!direct) std::printf("uring_reader: the file system of %s refuses O_DIRECT; reading through the page cache\n",
                             file.path.c_str());

    std::vector<request> slots(queue_depth);
    std::uint64_t reads = 0, fixed_reads = 0, plain_reads = 0, bytes_checked = 0;
    bool failed = false;

    for (int pass = 0; pass < passes && !failed; ++pass) {
        std::size_t next_offset = 0;
        unsigned in_flight = 0;
        // Takes a block for `slot`, prepares its read of the next offset. The
        // ring has queue_depth entries and at most queue_depth reads are in
        // flight, so an SQE is always free.
        auto start = [&](request& slot) {
            slot.data = static_cast<unsigned char*>(pool.allocate(io_size, page));
            slot.offset = next_offset;
            next_offset += io_size;
            std::memset(slot.data, 0, io_size); // a stale block must not pass the check
            io_uring_sqe* sqe = io_uring_get_sqe(&r.ring);
            const zeropool::fixed_buffer f = registry.find(slot.data, io_size);
            slot.fixed = static_cast<bool>(f);
            if (f)
                io_uring_prep_read_fixed(sqe, fd, slot.data, static_cast<unsigned>(io_size),
                                         static_cast<__u64>(slot.offset), f.index);
            else
                io_uring_prep_read(sqe, fd, slot.data, static_cast<unsigned>(io_size),
                                   static_cast<__u64>(slot.offset));
            io_uring_sqe_set_data(sqe, &slot);
            ++in_flight;
        };
        for (request& slot : slots)
            if (next_offset < file_bytes) start(slot);
        // Reaps one completion at a time; every read still in flight is
        // reaped before leaving, even after a failure, so no block is given
        // back while the kernel may still write into it.
        while (in_flight > 0) {
            if (const int rc = io_uring_submit(&r.ring); rc < 0) {
                std::fprintf(stderr, "uring_reader: io_uring_submit: %s\n", std::strerror(-rc));
                failed = true;
                break; // nothing more completes from a submit that failed
            }
            io_uring_cqe* cqe = nullptr;
            if (const int rc = io_uring_wait_cqe(&r.ring, &cqe); rc < 0) {
                if (rc == -EINTR) continue;
                std::fprintf(stderr, "uring_reader: io_uring_wait_cqe: %s\n", std::strerror(-rc));
                failed = true;
                break;
            }
            auto& slot = *static_cast<request*>(io_uring_cqe_get_data(cqe));
            const int res = cqe->res;
            io_uring_cqe_seen(&r.ring, cqe);
            --in_flight;
            ++reads;
            ++(slot.fixed ? fixed_reads : plain_reads);
            if (res != static_cast<int>(io_size)) {
                std::fprintf(stderr, "uring_reader: read of 1 MiB at %zu returned %d (%s)\n", slot.offset, res,
                             res < 0 ? std::strerror(-res) : "short");
                failed = true;
            } else if (!holds_file_bytes(slot.data, io_size, slot.offset)) {
                std::fprintf(stderr, "uring_reader: the block read at %zu differs from the file\n", slot.offset);
                failed = true;
            } else {
                bytes_checked += io_size;
            }
            pool.deallocate(slot.data, io_size, page);
            slot.data = nullptr;
            if (!failed && next_offset < file_bytes) start(slot);
        }
        if (in_flight > 0) {
            // The ring cannot be trusted to finish: leak the blocks still in
            // flight rather than hand the kernel's target to the next user.
            std::fprintf(stderr, "uring_reader: %u reads left in flight\n", in_flight);
            ::close(fd);
            std::_Exit(1);
        }
    }
    ::close(fd);

    const zeropool::io_uring_registry_stats s = registry.stats();
    std::printf("uring_reader: %d passes over %zu MiB (%s), queue depth %u: %llu reads of 1 MiB, "
                "%llu READ_FIXED, %llu plain READ; %llu MiB checked\n",
                passes, file_bytes >> 20, direct ? "O_DIRECT" : "page cache", queue_depth,
                static_cast<unsigned long long>(reads), static_cast<unsigned long long>(fixed_reads),
                static_cast<unsigned long long>(plain_reads), static_cast<unsigned long long>(bytes_checked >> 20));
    std::printf("uring_reader: registry: %llu registrations, %llu refusals, %zu blocks (%zu MiB) registered now\n",
                static_cast<unsigned long long>(s.registrations), static_cast<unsigned long long>(s.refusals),
                s.registered_blocks, s.registered_bytes >> 20);
    if (failed || bytes_checked != passes * file_bytes) return 1;
    if (plain_reads > 0)
        std::printf("uring_reader: %llu blocks were refused registration (RLIMIT_MEMLOCK or a full table) and "
                    "were read into with plain READ\n",
                    static_cast<unsigned long long>(s.refusals));
    return 0;
}
