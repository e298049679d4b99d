// A mask: every other output position (0, 2, 4, ...), gathered into a new tensor. It is not a view
// of the output, so backward() writes the compared part's gradient back into the output's shape.
#include <inputrep/inputrep.hpp>

struct EvenPositions {
    at::Tensor operator()(const at::Tensor& out) const { return out.index_select(1, index(out)); }
    at::Tensor backward(const at::Tensor& d_part, const at::Tensor& out) const {
        return at::zeros_like(out).index_copy_(1, index(out), d_part);
    }
    constexpr bool selects_tokens() const { return true; }  // Sequential<...> refuses it at compile time
    void check(std::int64_t) const {}

private:
    static at::Tensor index(const at::Tensor& out) {
        return at::arange(0, out.size(1), 2, at::TensorOptions(at::kLong).device(out.device()));
    }
};
static_assert(inputrep::OutputMask<EvenPositions>);
