// Shared by file_read_demo and cold_start_bench: the plain POSIX file I/O
// both do with their temporary page-cache file. Not a program of its own
// (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_FILE_IO_HPP
#define ZEROPOOL_PERF_FILE_IO_HPP

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

namespace zeropool_perf {

/// An exception carrying "<what> <path>: <strerror(errno)>".
inline std::runtime_error io_error(const char* what, const std::string& path) {
    return std::runtime_error(std::string(what) + " " + path + ": " + std::strerror(errno));
}

/// Closes a file descriptor at scope exit.
class file_descriptor {
public:
    explicit file_descriptor(int fd) noexcept : fd_(fd) {}
    ~file_descriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

/// Creates a new file named "<prefix>XXXXXX" (unique) in the system temp
/// directory; sets `path` and returns its descriptor, open for reading and
/// writing. Throws on failure.
inline int create_temp_file(const char* prefix, std::string& path) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(prefix) + "XXXXXX")).string();
    const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) throw io_error("cannot create a temporary file like", tmpl);
    path = tmpl;
    return fd;
}

/// Writes all of [data, data + n) to `fd`, retrying after short writes and
/// EINTR. Throws on an error (naming `path`).
inline void write_all(int fd, const std::byte* data, std::size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw io_error("cannot write", path);
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Reads the first `n` bytes of the file at `path` into `dst`: open(2) once,
/// then read(2) until n bytes arrived, retrying after short reads and EINTR.
/// Throws on an I/O error or when the file is shorter than n.
/// Takes a C string so that a timed call makes no allocation of its own.
inline void read_file(const char* path, std::byte* dst, std::size_t n) {
    const file_descriptor fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw io_error("cannot open", path);
    for (std::size_t done = 0; done < n;) {
        const ssize_t r = ::read(fd.get(), dst + done, n - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw io_error("cannot read", path);
        }
        if (r == 0)
            throw std::runtime_error("unexpected end of file " + std::string(path) + " after " +
                                     std::to_string(done) + " of " + std::to_string(n) + " bytes");
        done += static_cast<std::size_t>(r);
    }
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_FILE_IO_HPP
