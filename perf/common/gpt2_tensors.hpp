// Used by variable_io_bench: the byte sizes of the tensors of GPT-2 124M
// (float32), in the order its public `model.safetensors` stores them. Not a
// program of its own (the build globs perf/*.cpp).
//
// Derived, not read from a file (the benchmarks have no network): the list
// is computed below from the architecture (n_layer 12, n_embd 768, vocab
// 50257, n_ctx 1024), 4 bytes per element:
//   per layer N   h.N.ln_1.{weight,bias} [768], h.N.attn.c_attn.weight
//                 [768, 2304], .bias [2304], h.N.attn.c_proj.weight
//                 [768, 768], .bias [768], h.N.ln_2.{weight,bias} [768],
//                 h.N.mlp.c_fc.weight [768, 3072], .bias [3072],
//                 h.N.mlp.c_proj.weight [3072, 768], .bias [768];
//   then          ln_f.{weight,bias} [768], wpe.weight [1024, 768],
//                 wte.weight [50257, 768].
// 12 * 12 + 4 = 148 tensors, 124,439,808 parameters, 497,759,232 bytes
// (3 KiB to 147.2 MiB). safetensors writes tensors of one dtype sorted by
// name, so the file order is h.0, h.1, h.10, h.11, h.2, ..., h.9, then ln_f,
// wpe, wte; within a layer attn.c_attn.{bias,weight},
// attn.c_proj.{bias,weight}, ln_1.{bias,weight}, ln_2.{bias,weight},
// mlp.c_fc.{bias,weight}, mlp.c_proj.{bias,weight}. Every layer has the same
// shapes, so the size sequence is that of one layer twelve times.
// Left out: the published file also carries each layer's causal-mask buffer
// h.N.attn.bias [1, 1, 1024, 1024] (4 MiB), which is not a learned weight;
// with those 12 buffers it would hold 160 tensors, about 548 MB.
#ifndef ZEROPOOL_PERF_GPT2_TENSORS_HPP
#define ZEROPOOL_PERF_GPT2_TENSORS_HPP

#include <array>
#include <cstddef>
#include <vector>

namespace zeropool_perf {

/// The number of tensors of GPT-2 124M that the list holds.
inline constexpr std::size_t gpt2_124m_tensor_count = 148;

namespace gpt2_detail {

inline constexpr std::size_t n_layer = 12;
inline constexpr std::size_t n_embd = 768;
inline constexpr std::size_t n_vocab = 50257;
inline constexpr std::size_t n_ctx = 1024;
inline constexpr std::size_t float_bytes = 4;

/// Elements of one layer's tensors, in the name order of the file.
constexpr std::array<std::size_t, 12> layer_elements() {
    constexpr std::size_t d = n_embd;
    return {3 * d,     d * 3 * d, // attn.c_attn.bias, .weight
            d,         d * d,     // attn.c_proj.bias, .weight
            d,         d,         // ln_1.bias, .weight
            d,         d,         // ln_2.bias, .weight
            4 * d,     d * 4 * d, // mlp.c_fc.bias, .weight
            d,         4 * d * d}; // mlp.c_proj.bias, .weight
}

/// Every tensor's byte size, in file order.
constexpr std::array<std::size_t, gpt2_124m_tensor_count> tensor_bytes() {
    std::array<std::size_t, gpt2_124m_tensor_count> out{};
    std::size_t i = 0;
    for (std::size_t layer = 0; layer < n_layer; ++layer)
        for (std::size_t e : layer_elements()) out[i++] = e * float_bytes;
    out[i++] = n_embd * float_bytes;         // ln_f.bias
    out[i++] = n_embd * float_bytes;         // ln_f.weight
    out[i++] = n_ctx * n_embd * float_bytes; // wpe.weight
    out[i++] = n_vocab * n_embd * float_bytes; // wte.weight
    return out;
}

constexpr std::size_t sum(const std::array<std::size_t, gpt2_124m_tensor_count>& a) {
    std::size_t total = 0;
    for (std::size_t v : a) total += v;
    return total;
}

/// True when no entry was left unfilled (0).
constexpr bool all_filled(const std::array<std::size_t, gpt2_124m_tensor_count>& a) {
    for (std::size_t v : a)
        if (v == 0) return false;
    return true;
}

inline constexpr std::array<std::size_t, gpt2_124m_tensor_count> sizes = tensor_bytes();

} // namespace gpt2_detail

/// The checkpoint's total size: 497,759,232 bytes (124,439,808 float32).
inline constexpr std::size_t gpt2_124m_total_bytes = gpt2_detail::sum(gpt2_detail::sizes);

static_assert(gpt2_detail::all_filled(gpt2_detail::sizes), "148 tensors, each written once");
static_assert(gpt2_124m_total_bytes == 497'759'232, "124,439,808 parameters of 4 bytes");
static_assert(gpt2_detail::sizes.front() == 9 * 1024, "the first tensor: h.0.attn.c_attn.bias");
static_assert(gpt2_detail::sizes.back() == 154'389'504, "the last tensor: wte, 147.2 MiB");

/// Returns: the byte sizes of GPT-2 124M's 148 float32 tensors, in the order
/// of its model.safetensors (see the top of this file; derived, not read).
inline std::vector<std::size_t> gpt2_124m_tensor_bytes() {
    return {gpt2_detail::sizes.begin(), gpt2_detail::sizes.end()};
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_GPT2_TENSORS_HPP
