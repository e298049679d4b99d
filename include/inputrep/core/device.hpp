#pragma once
// Where tensors live and in which dtype they compute. Everything that makes a tensor takes one.
#include <string>
#include <string_view>

#include <inputrep/core/error.hpp>
#include <inputrep/core/torch.hpp>

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

namespace inputrep {

// How the blocks' linear weights are held (model/weight.hpp): as loaded, in the compute dtype; as
// int8 rows with one scale per output channel; or as int8 rows multiplied the way bitsandbytes'
// LLM.int8 multiplies them (the seed's load_in_8bit).
enum class Weights { dense, int8, llm_int8 };

struct Placement {
    at::Device device = at::kCPU;
    at::ScalarType dtype = at::kFloat;
    Weights weights = Weights::dense;

    // libtorch's CPU kernels have no f16 matmul or layer_norm, so f16 computes as f32 on the CPU.
    Placement resolved() const {
        if (device.is_cpu() && dtype == at::kHalf) return {device, at::kFloat, weights};
        return *this;
    }
    at::TensorOptions options() const { return at::TensorOptions().device(device).dtype(resolved().dtype); }
};

inline Weights parse_weights(std::string_view name) {
    if (name == "none") return Weights::dense;
    if (name == "int8") return Weights::int8;
    if (name == "llm.int8") return Weights::llm_int8;
    fail("unknown quantisation \"", name, "\" (expected int8, llm.int8 or none)");
}

inline at::ScalarType parse_dtype(std::string_view name) {
    if (name == "f32" || name == "float32") return at::kFloat;
    if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
    if (name == "f16" || name == "float16") return at::kHalf;
    fail("unknown dtype \"", name, "\" (expected f32, bf16 or f16)");
}

// "cpu", "cuda" or "cuda:N", refused at once where it cannot run (a CPU-only libtorch, a GPU index
// this machine lacks) rather than by libtorch's many lines when the first tensor moves there.
inline at::Device parse_device(const std::string& name) {
    at::Device device = at::kCPU;
    try {
        device = at::Device(name);
    } catch (const c10::Error&) {
        fail("unknown device \"", name, "\" (expected cpu, cuda or cuda:N)");
    }
    if (device.is_cuda()) {
        require(at::hasCUDA(), "device \"", name,
                "\": this inputrep's libtorch was built without CUDA (or sees no GPU); use cpu");
        const auto count = at::detail::getCUDAHooks().getNumGPUs();
        require(!device.has_index() || device.index() < count, "device \"", name, "\": this machine has ", count,
                " CUDA device", count == 1 ? "" : "s", " (cuda:0",
                count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string(), ")");
    } else {
        require(device.is_cpu(), "device \"", name, "\" is not supported (expected cpu, cuda or cuda:N)");
    }
    return device;
}

}  // namespace inputrep
