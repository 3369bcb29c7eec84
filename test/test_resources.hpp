// zeropool tests: reusable test doubles for std::pmr::memory_resource.
//
//   recording_resource   checks and counts every call it receives (the upstream
//                        the tests hand to the pool under test);
//   poisoning_resource   fills every fresh block with 0xAB (shows nothing zeroes);
//   failing_resource     throws injected_failure on chosen allocate calls;
//   expect_balanced      Boost.Test checks: no violations, nothing outstanding.
//
// All doubles are thread-safe and wrap another resource (new_delete_resource()
// by default), so they can be chained: pool -> failing -> poisoning -> recording.
//
// Include this header after <boost/test/unit_test.hpp>, which the test module
// includes with BOOST_TEST_MODULE defined: Boost.Test generates main() only if
// BOOST_TEST_MODULE is defined before its first header is seen, so this header
// does not include Boost.Test itself (expect_balanced needs BOOST_TEST).
#ifndef ZEROPOOL_TEST_TEST_RESOURCES_HPP
#define ZEROPOOL_TEST_TEST_RESOURCES_HPP

#ifndef BOOST_TEST
#error "test_resources.hpp: #define BOOST_TEST_MODULE and #include <boost/test/unit_test.hpp> first"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace zeropool_test {

/// True when `a` is a power of two.
constexpr bool is_pow2(std::size_t a) noexcept { return a != 0 && (a & (a - 1)) == 0; }

/// True when `p` is a multiple of `alignment` (a power of two).
inline bool is_aligned(const void* p, std::size_t alignment) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

/// A memory_resource that records every live block it hands out and checks
/// every call against the std::pmr contract:
///  - allocate: the alignment must be a power of two (else a violation is
///    recorded and std::bad_alloc thrown); the returned pointer must honour it;
///  - deallocate: the pointer must be live (not unknown, not already freed) and
///    (bytes, alignment) must equal those of its allocate call. A bad call is
///    recorded as a violation, never thrown (deallocate is noexcept); a
///    mismatched call is forwarded with the recorded size and alignment, an
///    unknown pointer is not forwarded.
/// Requests larger than `max_request` (default 4 GiB) throw std::bad_alloc
/// without reaching the wrapped resource, as a real allocator out of memory
/// would: sanitizer allocators abort on huge requests instead of throwing.
/// Counters cover every call, including the ones that threw.
class recording_resource : public std::pmr::memory_resource {
public:
    static constexpr std::size_t default_max_request = std::size_t{1} << 32;

    explicit recording_resource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource(),
                                std::size_t max_request = default_max_request) noexcept
        : upstream_(upstream), max_request_(max_request) {}

    recording_resource(const recording_resource&) = delete;
    recording_resource& operator=(const recording_resource&) = delete;

    /// Calls of allocate, including those that threw.
    std::size_t allocate_calls() const { return read(allocate_calls_); }
    /// Calls of allocate that threw.
    std::size_t failed_allocate_calls() const { return read(failed_allocate_calls_); }
    /// Calls of deallocate, including bad ones.
    std::size_t deallocate_calls() const { return read(deallocate_calls_); }
    /// Blocks handed out and not yet deallocated.
    std::size_t outstanding_blocks() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return live_.size();
    }
    /// Sum of the sizes of the outstanding blocks.
    std::size_t outstanding_bytes() const { return read(outstanding_bytes_); }
    /// Size and alignment of the last allocate call (0 before the first).
    std::size_t last_allocate_size() const { return read(last_allocate_size_); }
    std::size_t last_allocate_alignment() const { return read(last_allocate_alignment_); }
    /// Size and alignment of the last deallocate call (0 before the first).
    std::size_t last_deallocate_size() const { return read(last_deallocate_size_); }
    std::size_t last_deallocate_alignment() const { return read(last_deallocate_alignment_); }
    /// True when `p` points into a block handed out by this resource and not
    /// yet freed (a pool may hand out a pointer past the start of its block).
    bool is_live(const void* p) const { return block_of(p) != nullptr; }
    /// Start of the live block `p` points into, or nullptr.
    const void* block_of(const void* p) const {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = containing(p);
        return it == live_.end() ? nullptr : it->first;
    }
    /// Size of the live block `p` points into, as allocated (0 if none).
    std::size_t size_of(const void* p) const { return info_of(p).bytes; }
    /// Alignment of the live block `p` points into, as allocated (0 if none).
    std::size_t alignment_of(const void* p) const { return info_of(p).alignment; }
    /// Every contract violation seen so far, one message each.
    std::vector<std::string> violations() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return violations_;
    }

private:
    struct block_info {
        std::size_t bytes;
        std::size_t alignment;
    };

    std::size_t read(const std::size_t& field) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return field;
    }
    block_info info_of(const void* p) const {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = containing(p);
        return it == live_.end() ? block_info{0, 0} : it->second;
    }
    // The live block whose [start, start + max(bytes, 1)) holds p. Under mutex_.
    std::map<const void*, block_info, std::less<>>::const_iterator containing(const void* p) const {
        auto it = live_.upper_bound(p);
        if (it == live_.begin()) return live_.end();
        --it;
        const auto start = reinterpret_cast<std::uintptr_t>(it->first);
        const auto at = reinterpret_cast<std::uintptr_t>(p);
        const std::size_t length = it->second.bytes == 0 ? 1 : it->second.bytes;
        return at - start < length ? it : live_.end();
    }

    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++allocate_calls_;
            last_allocate_size_ = bytes;
            last_allocate_alignment_ = alignment;
            if (!is_pow2(alignment)) {
                ++failed_allocate_calls_;
                violation_locked("allocate", nullptr, bytes, alignment, "alignment is not a power of two");
                throw std::bad_alloc();
            }
            if (bytes > max_request_) {
                ++failed_allocate_calls_;
                throw std::bad_alloc();
            }
        }
        void* p = nullptr;
        try {
            p = upstream_->allocate(bytes, alignment);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            ++failed_allocate_calls_;
            throw;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        if (!is_aligned(p, alignment)) violation_locked("allocate", p, bytes, alignment, "misaligned block");
        try {
            if (!live_.emplace(p, block_info{bytes, alignment}).second)
                violation_locked("allocate", p, bytes, alignment, "block handed out twice");
        } catch (...) { // no memory to record it: give the block back and fail
            ++failed_allocate_calls_;
            upstream_->deallocate(p, bytes, alignment);
            throw;
        }
        freed_.erase(p);
        outstanding_bytes_ += bytes;
        return p;
    }

    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        block_info info{bytes, alignment};
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++deallocate_calls_;
            last_deallocate_size_ = bytes;
            last_deallocate_alignment_ = alignment;
            auto it = live_.find(p);
            if (it == live_.end()) {
                violation_locked("deallocate", p, bytes, alignment,
                                 freed_.count(p) != 0 ? "double free" : "unknown pointer");
                return; // not ours to free
            }
            info = it->second;
            if (info.bytes != bytes || info.alignment != alignment)
                violation_locked("deallocate", p, bytes, alignment, "size/alignment mismatch", &info);
            outstanding_bytes_ -= info.bytes;
            live_.erase(it);
            try {
                freed_.insert(p);
            } catch (...) { // only the "double free" wording is lost
            }
        }
        upstream_->deallocate(p, info.bytes, info.alignment);
    }

    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return this == &other;
    }

    // Records one violation; mutex_ must be held. Throws nothing.
    void violation_locked(const char* call, const void* p, std::size_t bytes, std::size_t alignment,
                          const char* why, const block_info* recorded = nullptr) noexcept {
        try {
            std::ostringstream m;
            m << call << "(" << p << ", " << bytes << ", " << alignment << "): " << why;
            if (recorded != nullptr)
                m << "; allocated as (" << recorded->bytes << ", " << recorded->alignment << ")";
            violations_.push_back(m.str());
        } catch (...) {
            try {
                violations_.emplace_back(); // still non-empty if the message cannot be built
            } catch (...) {
            }
        }
    }

    std::pmr::memory_resource* upstream_;
    std::size_t max_request_;

    mutable std::mutex mutex_; // guards everything below
    std::map<const void*, block_info, std::less<>> live_; // ordered: lookups by containment
    std::unordered_set<const void*> freed_; // freed and not handed out again
    std::size_t allocate_calls_ = 0;
    std::size_t failed_allocate_calls_ = 0;
    std::size_t deallocate_calls_ = 0;
    std::size_t outstanding_bytes_ = 0;
    std::size_t last_allocate_size_ = 0;
    std::size_t last_allocate_alignment_ = 0;
    std::size_t last_deallocate_size_ = 0;
    std::size_t last_deallocate_alignment_ = 0;
    std::vector<std::string> violations_;
};

/// The byte poisoning_resource writes into fresh blocks.
inline constexpr unsigned char poison_value = 0xAB;
inline constexpr std::byte poison_byte{poison_value};

/// True when the `n` bytes at `p` all equal poison_value.
inline bool all_poisoned(const void* p, std::size_t n) noexcept {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i)
        if (b[i] != poison_value) return false;
    return true;
}

/// A memory_resource that fills every block it gets from the wrapped resource
/// with poison_value (0xAB) before handing it out, so a test can tell whether
/// anyone wrote (e.g. zeroed) the bytes afterwards. Deallocate forwards as is.
/// Filling costs a pass over the block: keep poisoned sizes moderate.
class poisoning_resource : public std::pmr::memory_resource {
public:
    explicit poisoning_resource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource()) noexcept
        : upstream_(upstream) {}

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        void* p = upstream_->allocate(bytes, alignment);
        std::memset(p, poison_value, bytes);
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        upstream_->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return this == &other;
    }

    std::pmr::memory_resource* upstream_;
};

/// The exception failing_resource throws. Derives from std::bad_alloc, as an
/// allocation failure should, but is a distinct type so a test can prove that
/// the exact upstream exception reached the caller.
struct injected_failure : std::bad_alloc {
    const char* what() const noexcept override { return "zeropool_test::injected_failure"; }
};

/// A memory_resource that forwards to the wrapped resource, except that chosen
/// allocate calls throw injected_failure (without reaching the wrapped
/// resource). Deallocate always forwards. Thread-safe.
///   fail_next(n)   the next n allocate calls fail (fail_next(SIZE_MAX): all);
///   fail_nth(k)    the k-th allocate call from now (1-based) fails, the calls
///                  before it succeed (replaces any earlier arming);
///   disarm()       no call fails any more.
class failing_resource : public std::pmr::memory_resource {
public:
    explicit failing_resource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource()) noexcept
        : upstream_(upstream) {}

    void fail_next(std::size_t n) {
        std::lock_guard<std::mutex> lock(mutex_);
        skip_ = 0;
        fail_ = n;
    }
    void fail_nth(std::size_t k) {
        std::lock_guard<std::mutex> lock(mutex_);
        skip_ = k == 0 ? 0 : k - 1;
        fail_ = k == 0 ? 0 : 1;
    }
    void disarm() { fail_next(0); }

    /// Calls of allocate, failed or not.
    std::size_t allocate_calls() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return calls_;
    }
    /// Calls of allocate that threw injected_failure.
    std::size_t failures() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return failures_;
    }

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++calls_;
            if (skip_ > 0) {
                --skip_;
            } else if (fail_ > 0) {
                --fail_;
                ++failures_;
                throw injected_failure();
            }
        }
        return upstream_->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        upstream_->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return this == &other;
    }

    std::pmr::memory_resource* upstream_;
    mutable std::mutex mutex_; // guards everything below
    std::size_t skip_ = 0;     // calls to let through before failing
    std::size_t fail_ = 0;     // calls to fail after that
    std::size_t calls_ = 0;
    std::size_t failures_ = 0;
};

/// Makes `resource` the default resource for the guard's lifetime and restores
/// the previous one when destroyed (also during stack unwinding).
class default_resource_guard {
public:
    explicit default_resource_guard(std::pmr::memory_resource* resource) noexcept
        : previous_(std::pmr::set_default_resource(resource)) {}
    ~default_resource_guard() { std::pmr::set_default_resource(previous_); }
    default_resource_guard(const default_resource_guard&) = delete;
    default_resource_guard& operator=(const default_resource_guard&) = delete;

    /// The default resource before the guard was built.
    std::pmr::memory_resource* previous() const noexcept { return previous_; }

private:
    std::pmr::memory_resource* previous_;
};

/// Boost.Test checks that `r` saw no contract violation and that every block
/// it handed out was given back (call after the resource under test is gone).
inline void expect_balanced(const recording_resource& r) {
    const std::vector<std::string> v = r.violations();
    BOOST_TEST(v.empty(), "upstream saw " << v.size() << " violation(s)"
                                          << (v.empty() ? std::string() : ", first: " + v.front()));
    BOOST_TEST(r.outstanding_blocks() == 0u);
    BOOST_TEST(r.outstanding_bytes() == 0u);
}

/// Fixture: a recording upstream checked by expect_balanced() at teardown.
/// Destroy the resources under test inside the test body (e.g. in a block
/// scope) so that they have returned their blocks by then.
struct balanced_upstream {
    recording_resource upstream;
    balanced_upstream() = default;
    balanced_upstream(const balanced_upstream&) = delete;
    balanced_upstream& operator=(const balanced_upstream&) = delete;
    ~balanced_upstream() { expect_balanced(upstream); }
};

} // namespace zeropool_test

#endif // ZEROPOOL_TEST_TEST_RESOURCES_HPP
