#pragma once
// Experiment<Model, Slice, Metric, Optimizer, Mask, Space, Decoder>: recover a prompt from the
// output of a model slice by optimising an input until the slice's output matches, then decode it.
//
//   target a  = Space::target(ids);          O(a) = Mask(Slice(a))
//   shifted a′ = a + σ·N(0, 1);              the yard-stick m(O(a′), O(a))
//   a_g ← init;  repeat N: a_g ← step(a_g, ∇ m(O(a_g), O(a)))
//   decode a_g through the Decoder; exact when top-1 equals the prompt.
//
// Every prompt and restart of a run advances in one batch tensor. The loop body is fully typed: the
// policies are members, so nothing is virtual or erased inside a step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <range/v3/algorithm/stable_sort.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/view/chunk_by.hpp>
#include <range/v3/view/join.hpp>
#include <range/v3/view/transform.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <inputrep/gradient.hpp>
#include <inputrep/model/model.hpp>
#include <inputrep/model/slice.hpp>
#include <inputrep/policy/decode.hpp>
#include <inputrep/policy/mask.hpp>
#include <inputrep/policy/metric.hpp>
#include <inputrep/policy/optimizer.hpp>
#include <inputrep/policy/space.hpp>
#include <inputrep/search/policy.hpp>
#include <inputrep/search/result.hpp>
#include <inputrep/tokenizer/tokenizer.hpp>

namespace inputrep {

struct RunOptions {
    int steps = 0;                           // 0: the family's default
    std::optional<double> lr_start, lr_end;  // unset: the optimizer type's rates, else the family's
    std::optional<double> init_scale;        // σ of the N(μ, σ) initial input; unset: the family's
    double init_mean = 0;                    // μ: 0, as the author's code; the seed's text says N(1/2, 1/20)
    std::uint64_t seed = 0;
    int restarts = 1;  // random restarts per prompt, all in one batch; the best is kept
    int top_k = 5;
    double shift_sigma = 0.05;                          // a′ = a + shift_sigma·N(0, 1)
    std::function<void(int step, int steps)> progress;  // called every progress_every steps
    int progress_every = 100;
    bool early_stop = false;    // stop once every prompt is closer than its shifted input
    int early_stop_every = 10;  // how often to check (each check synchronises the device)
};

// One prompt's outcome. Arrays are xtensor (host side, for analysis and export): every restart's
// distance trace, and the decoder's top-k ids with their scores.
class Result {
public:
    struct Fields {
        std::vector<std::int64_t> target;
        xt::xtensor<std::int64_t, 2> top_k_ids;  // [k, position]
        xt::xtensor<float, 2> top_k_scores;      // [k, position]: the decoder's score of each id
        std::vector<std::string> top_k_text;     // [k], when a tokenizer was attached
        xt::xtensor<float, 2> traces;            // [restart, step]: distance before each step, then the final one
        double shifted_distance = 0;
        int restart = 0;  // the best restart (least final distance)
        int batch = 1;
        double steps_per_second = 0;  // batch steps per second of the loop alone
    };
    explicit Result(Fields f)
        : f_(std::move(f)),
          trace_(xt::row(f_.traces, f_.restart)),
          restart_distances_(xt::col(f_.traces, f_.traces.shape(1) - 1)) {
        auto line = xt::row(f_.top_k_ids, 0);
        ids_.assign(line.begin(), line.end());
    }

    const std::vector<std::int64_t>& target() const { return f_.target; }
    const std::vector<std::int64_t>& ids() const { return ids_; }  // the top-1 line
    const xt::xtensor<std::int64_t, 2>& top_k_ids() const { return f_.top_k_ids; }
    const xt::xtensor<float, 2>& top_k_scores() const { return f_.top_k_scores; }
    // The first k decoded lines; line i holds every position's (i+1)-th most likely token.
    std::vector<std::string> top_k(std::size_t k) const {
        require(!f_.top_k_text.empty(),
                "no tokenizer was attached to the experiment, so there is no text (use top_k_ids)");
        return {f_.top_k_text.begin(), f_.top_k_text.begin() + std::min(k, f_.top_k_text.size())};
    }
    std::string decoded() const { return top_k(1).front(); }
    double distance() const { return f_.traces(f_.restart, f_.traces.shape(1) - 1); }
    double shifted_distance() const { return f_.shifted_distance; }
    bool succeeded_in_distance() const { return distance() < f_.shifted_distance; }
    bool exact() const { return !f_.target.empty() && ids() == f_.target; }  // false when no prompt was given
    std::size_t exact_tokens() const { return matching_tokens(ids_, f_.target); }
    // The best restart's distance per step.
    const xt::xtensor<float, 1>& trace() const { return trace_; }
    const xt::xtensor<float, 2>& traces() const { return f_.traces; }
    const xt::xtensor<float, 1>& restart_distances() const {
        return restart_distances_;
    }  // the final distance of each restart
    int restart() const { return f_.restart; }
    int batch() const { return f_.batch; }
    double steps_per_second() const { return f_.steps_per_second; }

private:
    Fields f_;
    xt::xtensor<float, 1> trace_, restart_distances_;  // copies, so begin() and end() of two calls belong together
    std::vector<std::int64_t> ids_;
};

// What every run found for one prompt, whichever kind of run (Result, search/result.hpp's
// SearchResult): what the CLI's JSON, summarize() and the sweep summaries read. What only one kind
// has (a trace, a shifted input, a verification) is read where that kind is known.
template <class R>
concept Outcome = requires(const R& r) {
    { r.target() } -> std::same_as<const std::vector<std::int64_t>&>;
    { r.ids() } -> std::same_as<const std::vector<std::int64_t>&>;
    { r.exact() } -> std::same_as<bool>;
    { r.exact_tokens() } -> std::same_as<std::size_t>;
    { r.distance() } -> std::same_as<double>;
};
static_assert(Outcome<Result> && Outcome<SearchResult>);

// Compile-time checks whose failing instantiation shows the numbers, e.g. slice_fits_model<13, 12>.
template <int SliceEnd, int ModelDepth>
struct slice_fits_model {
    static_assert(
        ModelDepth == dynamic_depth || SliceEnd == dynamic_depth || SliceEnd <= ModelDepth,
        "the slice ends past the model's last block: Blocks<B, E> needs E <= the depth N of Layers<Family, N>");
    static constexpr bool value = true;
};

// Whether a slice type lets outputs see later tokens whatever its value (Bidirectional<...>).
template <class S>
constexpr bool always_bidirectional() {
    if constexpr (requires { typename std::bool_constant<S{}.causal()>; })
        return !S{}.causal();
    else
        return false;
}

template <class Model, Slice S = Blocks<0, 1>, Metric Mt = L1, class Op = Adam<>, OutputMask Mk = AllTokens,
          class Sp = EmbeddingSpace, Decoder De = PseudoInverse>
class Experiment {
    using Family = family_of_t<Model>;
    static_assert(LanguageModel<Family>,
                  "Experiment<Model, ...>: Model must be a model family (GPT2, ...) or Layers<Family, N>");
    static_assert(slice_fits_model<static_end_of<S>(), static_depth_of<Model>()>::value);
    static_assert(
        Optimizer<Op> || is_exact<Op>,
        "Experiment<..., Op, ...>: Op must be an optimizer (GradientDescent, Adam, Sequential) or Exact<Rank>");
    static_assert(!is_exact<Op> || !always_bidirectional<S>(),
                  "Exact<...> searches left to right, which needs a causal slice: Bidirectional<...> lets every output "
                  "see later tokens");
    static_assert(!Focusing<Op> || !always_selects_tokens<Mk>(),
                  "Sequential<...> compares one output position per phase: use AllTokens or a Neurons<B, E> mask");

public:
    // What a run gives per prompt: exact search's SearchResult, a gradient method's Result.
    using result_type = std::conditional_t<is_exact<Op>, SearchResult, Result>;

    explicit Experiment(Model model, S slice = {}, Mt metric = {}, Op optimizer = {}, Mk mask = {}, Sp space = {},
                        De decoder = {})
        : model_(std::move(model)),
          slice_(slice),
          metric_(metric),
          optimizer_(optimizer),
          mask_(mask),
          space_(space),
          decoder_(decoder) {}

    // Attach a tokenizer so results carry decoded text.
    Experiment& with_tokenizer(Tokenizer tokenizer) {
        tokenizer_ = std::move(tokenizer);
        return *this;
    }

    const Model& model() const { return model_; }

    result_type run(std::span<const std::int64_t> prompt, const RunOptions& options = {}) const {
        return run_batch({{prompt.begin(), prompt.end()}}, options).front();
    }

    // Several prompts in one go; prompts of equal length share one batch tensor.
    std::vector<result_type> run(const std::vector<std::vector<std::int64_t>>& prompts,
                                 const RunOptions& options = {}) const {
        std::vector<std::size_t> order(prompts.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        ranges::stable_sort(order, std::less<>{}, [&](std::size_t i) { return prompts[i].size(); });
        std::vector<std::optional<result_type>> out(prompts.size());
        for (auto group : order | ranges::views::chunk_by([&](std::size_t a, std::size_t b) {
                              return prompts[a].size() == prompts[b].size();
                          })) {
            auto members = group | ranges::to<std::vector>();
            auto results = run_batch(members | ranges::views::transform([&](std::size_t i) { return prompts[i]; }) |
                                         ranges::to<std::vector>(),
                                     options);
            for (std::size_t j = 0; j < members.size(); ++j) out[members[j]] = std::move(results[j]);
        }
        return out | ranges::views::transform([](auto& r) { return std::move(*r); }) | ranges::to<std::vector>();
    }

    // Inversion from captured outputs alone, no prompt: `target` is the slice's output for one prompt
    // [tokens, features] or several of one length [prompts, tokens, features], as `inputrep hidden
    // --save` writes them (split inference, a cache). Exact search reads none of the options (its
    // settings are Exact<R>'s own); a continuous method starts where it would from the prompt and,
    // with no true input to shift, reports no shifted distance (NaN) and no target.
    std::vector<result_type> run_from_target(const at::Tensor& target, const RunOptions& options = {}) const {
        require(target.dim() == 2 || target.dim() == 3,
                "the target must be [tokens, features] or [prompts, tokens, features], not ", target.sizes());
        const at::Tensor full = target.dim() == 2 ? target.unsqueeze(0) : target;
        require(full.size(1) >= 1, "the target has no positions");
        require(full.size(1) <= model_.context_length(), "the target has ", full.size(1),
                " positions, longer than the model's context of ", model_.context_length());
        const auto expected = slice_output_features(full.size(1));
        require(full.size(2) == expected, "the target has ", full.size(2),
                " features per position but this slice of the ", Family::family, " model outputs ", expected);
        check_mask(full.size(1));
        const at::Tensor captured = full.to(model_.placement().device, model_.placement().resolved().dtype);
        if constexpr (is_exact<Op>) {
            return exact_results(captured, {}, full.scalar_type());
        } else {
            Session session(*this, std::vector<std::vector<std::int64_t>>(full.size(0)), captured, options);
            return drive(session, options);
        }
    }

    // RunOptions with the family's defaults filled in.
    struct Resolved {
        int steps;
        double init_scale;
        Schedule rates;
        double init_mean = 0;
    };

    // One optimisation in progress: prompts of equal length and their restarts as one batch. It
    // steps x ← step(x, ∇ Σ m(O(x), O(a))) and records distances; what a step compares comes from
    // the mask and the optimizer's focus, the gradient from one of the engines (gradient.hpp).
    // run() drives it to the end; a caller can also step it by hand (benchmarks, custom stopping).
    class Session {
    public:
        int steps() const { return cfg_.steps; }
        int steps_done() const { return done_; }
        bool done() const { return done_ == cfg_.steps; }

        void step() {
            require(!done(), "the session has run all its ", cfg_.steps, " steps");
            if (done_ == 0) started_ = std::chrono::steady_clock::now();
            const Experiment& e = *exp_;
            const Focus f = focus_of<Op>(done_, cfg_.steps, length_);
            // Either the mask's part of the output, or (a focusing optimizer) of one position alone.
            auto step_with = [&](const auto& compared) {
                const at::Tensor target = f.position < 0 ? target_out_ : compared(target_full_);
                if constexpr (written_out)
                    return written_out_gradient(e.model_, e.space_, e.slice_, ctx_, tapes_, e.metric_, compared, x_,
                                                target);
                else
                    return autograd_gradient(e.model_, e.space_, e.slice_, ctx_, e.metric_, compared, x_, target);
            };
            const DistanceGradient dg = f.position < 0
                                            ? step_with(e.mask_)
                                            : step_with(Mask<TokenRange, Mk>{{f.position, f.position + 1}, e.mask_});
            at::NoGradGuard no_grad;
            trace_.select(0, done_).copy_(dg.distance);
            const double lr = cfg_.rates.at(f.step, f.steps);
            if constexpr (Focusing<Op>)
                state_->step_at(x_, dg.gradient, lr, f.position);
            else
                state_->step(x_, dg.gradient, lr);
            ++done_;
        }

        // Whether every prompt is already closer to its target than the shifted input (some restart).
        bool closer_than_shifted() const {
            if (done_ == 0) return false;
            auto last = trace_.select(0, done_ - 1).to(at::kCPU, at::kDouble).view({-1, restarts_}).amin(1);
            return (last < shifted_distance_).all().item<bool>();
        }

        // Final distances; the best restart of each prompt, decoded.
        std::vector<Result> finish() {
            const Experiment& e = *exp_;
            if (done_ == 0) started_ = std::chrono::steady_clock::now();
            {
                at::NoGradGuard no_grad;
                trace_.select(0, done_).copy_(e.metric_(e.mask_(slice_output(x_)), target_out_));
            }
            const at::Tensor host_trace =
                trace_.narrow(0, 0, done_ + 1).to(at::kCPU).contiguous();  // synchronises the device
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
            if (!at::isfinite(host_trace).all().item<bool>()) {
                at::Tensor bad = at::logical_not(at::isfinite(host_trace)).any(1).nonzero();
                fail("the optimisation diverged: the distance became NaN or infinite at step ",
                     bad[0].item<std::int64_t>(), " (lower the learning rate or the initial scale)");
            }
            const auto P = static_cast<std::size_t>(prompts_.size()), R = static_cast<std::size_t>(restarts_),
                       N = static_cast<std::size_t>(done_ + 1), T = static_cast<std::size_t>(length_),
                       K = static_cast<std::size_t>(top_k_);
            // [step, prompt·restart] on the device → [prompt, restart, step] on the host.
            xt::xtensor<float, 3> traces = xt::transpose(xt::adapt(host_trace.data_ptr<float>(), std::array{N, P, R}),
                                                         std::array<std::size_t, 3>{1, 2, 0});
            const xt::xtensor<std::size_t, 1> best = xt::argmin(xt::view(traces, xt::all(), xt::all(), N - 1), 1);
            at::Tensor chosen;
            {
                at::NoGradGuard no_grad;
                std::vector<std::int64_t> rows(P);
                for (std::size_t p = 0; p < P; ++p) rows[p] = static_cast<std::int64_t>(p * R + best(p));
                chosen = x_.detach().index_select(0, at::tensor(rows, at::kLong).to(x_.device()));
            }
            // [prompt, position, k] → host arrays [prompt, k, position]
            at::Tensor top_scores, top_ids;
            std::tie(top_scores, top_ids) = at::topk(e.space_.scores(e.model_, chosen, e.decoder_state()), top_k_, -1);
            top_scores = top_scores.to(at::kCPU, at::kFloat).permute({0, 2, 1}).contiguous(),
            top_ids = top_ids.to(at::kCPU).permute({0, 2, 1}).contiguous();
            const std::array<std::size_t, 3> shape{P, K, T};
            const xt::xtensor<std::int64_t, 3> ids = xt::adapt(top_ids.data_ptr<std::int64_t>(), shape);
            const xt::xtensor<float, 3> scores = xt::adapt(top_scores.data_ptr<float>(), shape);
            const xt::xtensor<double, 1> shifted = xt::adapt(shifted_distance_.data_ptr<double>(), std::array{P});

            std::vector<Result> results;
            for (std::size_t p = 0; p < P; ++p) {
                Result::Fields f{.target = prompts_[p],
                                 .top_k_ids = xt::view(ids, p),
                                 .top_k_scores = xt::view(scores, p),
                                 .top_k_text = {},
                                 .traces = xt::view(traces, p),
                                 .shifted_distance = shifted(p),
                                 .restart = static_cast<int>(best(p)),
                                 .batch = static_cast<int>(P * R),
                                 .steps_per_second = done_ > 0 ? done_ / seconds : 0.0};
                if (e.tokenizer_)
                    for (std::size_t k = 0; k < K; ++k) {
                        auto line = xt::view(ids, p, k);
                        f.top_k_text.push_back(
                            e.tokenizer_->decode(std::vector<std::int64_t>(line.begin(), line.end())));
                    }
                results.emplace_back(std::move(f));
            }
            return results;
        }

    private:
        friend class Experiment;
        using Context = typename Family::Context;
        static constexpr bool written_out = written_out_applies<Family, S>;
        using Tapes = std::conditional_t<written_out, std::vector<tape_of_t<Family>>, std::monostate>;
        using OptimizerState = decltype(std::declval<const Op&>().start(std::declval<const at::Tensor&>()));

        // From prompts, or (`captured` defined, the prompts empty) from the slice's captured outputs.
        Session(const Experiment& e, std::vector<std::vector<std::int64_t>> prompts, const at::Tensor& captured,
                const RunOptions& o)
            : exp_(&e),
              prompts_(std::move(prompts)),
              cfg_(e.resolve(o)),
              restarts_(o.restarts),
              length_(captured.defined() ? captured.size(1) : static_cast<std::int64_t>(prompts_.front().size())),
              top_k_(o.top_k),
              ctx_(e.model_.context(length_, e.slice_.causal(), e.slice_.variant())) {
            const auto P = static_cast<std::int64_t>(prompts_.size()), R = restarts_;
            const at::Device device = e.model_.placement().device;
            // With no prompt, token 0s give the input's shape: the start is drawn, never taken from them.
            const at::Tensor ids =
                captured.defined() ? at::zeros({P, length_}, at::TensorOptions(at::kLong).device(device))
                                   : at::tensor(prompts_ | ranges::views::join | ranges::to<std::vector>(), at::kLong)
                                         .view({P, length_})
                                         .to(device);
            at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
            at::Tensor target_in;
            {
                at::NoGradGuard no_grad;
                target_in = e.space_.target(e.model_, ids);
                target_full_ = captured.defined() ? captured : slice_output(target_in);
                target_out_ = e.mask_(target_full_);
                // Drawn from a capture too, so that a capture and its prompt start from the same input.
                at::Tensor noise =
                    at::empty(target_in.sizes(), at::kFloat).normal_(0.0, 1.0, gen).to(device, target_in.scalar_type());
                shifted_distance_ =
                    captured.defined()
                        ? at::full({P}, std::numeric_limits<double>::quiet_NaN(), at::kDouble)
                        : e.metric_(e.mask_(slice_output(target_in + o.shift_sigma * noise)), target_out_)
                              .to(at::kDouble)
                              .cpu()
                              .contiguous();
                if (R > 1)
                    target_out_ = target_out_.repeat_interleave(R, 0),
                    target_full_ = target_full_.repeat_interleave(R, 0);
            }
            x_ =
                e.space_.initial(e.model_, R > 1 ? target_in.repeat_interleave(R, 0) : target_in, cfg_.init_scale, gen);
            if (cfg_.init_mean != 0) x_ = x_ + cfg_.init_mean;  // after the draw: the same noise for every mean
            if constexpr (!written_out) x_.requires_grad_(true);
            state_.emplace(e.optimizer_.start(x_));
            trace_ = at::empty({cfg_.steps + 1, P * R}, at::TensorOptions().dtype(at::kFloat).device(device));
        }

        at::Tensor slice_output(const at::Tensor& x) const {
            const Experiment& e = *exp_;
            return apply_slice(e.slice_, e.model_, e.space_.slice_input(e.model_, x), ctx_);
        }

        const Experiment* exp_;
        std::vector<std::vector<std::int64_t>> prompts_;
        Resolved cfg_;
        std::int64_t restarts_, length_, top_k_;
        Context ctx_;
        at::Tensor target_full_, target_out_, shifted_distance_, x_, trace_;
        std::optional<OptimizerState> state_;
        Tapes tapes_;
        int done_ = 0;
        std::chrono::steady_clock::time_point started_;
    };

    // Validates the prompts (equal length) and options, computes targets and the shifted yard-stick.
    // The Session refers to this Experiment, which must outlive it.
    Session start(const std::vector<std::vector<std::int64_t>>& prompts, const RunOptions& options = {}) const& {
        validate(prompts);
        return Session(*this, prompts, at::Tensor(), options);
    }
    template <class T = void>
    Session start(const std::vector<std::vector<std::int64_t>>&, const RunOptions& = {}) const&& {
        static_assert(
            always_false<T>,
            "Experiment::start() on a temporary: the Session would refer to an Experiment destroyed at the end of the "
            "statement. Keep the Experiment in a variable, or call run()");
    }

private:
    template <class>
    static constexpr bool always_false = false;

    Resolved resolve(const RunOptions& o) const {
        const InversionDefaults d = Family::defaults();
        const bool adam = kind_of(optimizer_) == OptimizerKind::adam;
        Schedule rates = optimizer_.rates().value_or(adam ? d.adam : d.gradient_descent);
        if (o.lr_start) rates.start = *o.lr_start;
        if (o.lr_end) rates.end = *o.lr_end;
        Resolved r{o.steps > 0 ? o.steps : d.steps, o.init_scale.value_or(d.init_scale), rates, o.init_mean};
        require(std::isfinite(o.init_mean), "the initial input's mean must be finite");
        require(o.steps >= 0, "steps must be positive");
        require(r.init_scale > 0, "the initial input's scale must be positive");
        require(o.restarts >= 1, "restarts must be at least 1");
        require(o.top_k >= 1, "top_k must be at least 1");
        return r;
    }

    void validate(const std::vector<std::vector<std::int64_t>>& prompts) const {
        require(!prompts.empty(), "no prompt given");
        const auto r = slice_.range();
        require(r.end <= model_.depth(), Family::family, ": the slice ends at block ", r.end,
                " but the model has only ", model_.depth(), " blocks");
        const auto vocab = model_.token_embedding().size(0);
        for (const auto& p : prompts) {
            require(!p.empty(), "empty prompt: there is nothing to invert");
            require(static_cast<std::int64_t>(p.size()) <= model_.context_length(), "prompt of ", p.size(),
                    " tokens is longer than the model's context of ", model_.context_length(), " positions");
            for (auto id : p) require(id >= 0 && id < vocab, "token id ", id, " is outside the vocabulary of ", vocab);
            require(p.size() == prompts.front().size(), "prompts of one batch must have equal length");
        }
        check_mask(static_cast<std::int64_t>(prompts.front().size()));
    }

    void check_mask(std::int64_t length) const {
        mask_.check(length);
        if constexpr (Focusing<Op>)
            require(!mask_.selects_tokens(),
                    "Sequential optimisation compares one output position at a time: use a mask without a token range");
    }

    const typename De::State& decoder_state() const {
        std::call_once(decoder_cache_->once,
                       [&] { decoder_cache_->state = decoder_.prepare(model_.token_embedding()); });
        return decoder_cache_->state;
    }

    // The slice's output width, from a one-prompt forward pass of `length` token-0s.
    std::int64_t slice_output_features(std::int64_t length) const {
        c10::InferenceMode no_autograd;
        const at::Tensor ids = at::zeros({1, length}, at::TensorOptions(at::kLong).device(model_.placement().device));
        return apply_slice(slice_, model_, space_.slice_input(model_, space_.target(model_, ids)),
                           model_.context(length, slice_.causal(), slice_.variant()))
            .size(-1);
    }

    // Exact search over `target` [P, T, F]; `prompts` (when given) are what the target came from.
    // `stored`: the dtype a captured target came in (Exact::target_dtype, unless set).
    std::vector<SearchResult> exact_results(const at::Tensor& target,
                                            const std::vector<std::vector<std::int64_t>>& prompts,
                                            std::optional<at::ScalarType> stored = {}) const {
        require(slice_.causal(),
                "exact inversion searches left to right, which needs a causal slice (this one is bidirectional)");
        using Search = ExactSearch<typename Op::rank_type, Family, S, Mk, Sp, typename De::State>;
        static_assert(
            requires { sizeof(Search); },
            "Experiment<..., Exact<R>> runs exact search, which is search/exact.hpp: include it (or "
            "<inputrep/inputrep.hpp>) where the experiment runs");
        auto policy = optimizer_;
        if (!policy.target_dtype) policy.target_dtype = stored;
        Search search(policy, family(), slice_, mask_, space_, decoder_state(), *exact_cache_);
        auto outcomes = search.run(target);
        const auto P = target.size(0), T = target.size(1);
        // The recovered ids' distance to the target, with the experiment's metric on the compared outputs.
        at::Tensor distance;
        {
            c10::InferenceMode no_autograd;
            std::vector<std::int64_t> flat;
            for (auto& o : outcomes) flat.insert(flat.end(), o.ids.begin(), o.ids.end());
            const at::Tensor ids = at::tensor(flat, at::kLong).view({P, T}).to(model_.placement().device);
            const auto ctx = model_.context(T, true, slice_.variant());
            distance =
                metric_(mask_(apply_slice(slice_, model_, space_.slice_input(model_, space_.target(model_, ids)), ctx)),
                        mask_(target))
                    .to(at::kCPU, at::kDouble);
        }
        std::vector<SearchResult> results;
        for (std::int64_t p = 0; p < P; ++p) {
            SearchResult::Fields f{.target = prompts.empty() ? std::vector<std::int64_t>{} : prompts[p],
                                   .ids = outcomes[p].ids,
                                   .text = {},
                                   .verification = std::move(outcomes[p].verification),
                                   // in f32, as a gradient run's trace holds it: the two kinds print alike
                                   .distance = static_cast<float>(distance[p].item<double>()),
                                   .batch = static_cast<int>(P)};
            if (tokenizer_) f.text = tokenizer_->decode(f.ids);
            results.emplace_back(std::move(f));
        }
        return results;
    }

    const Family& family() const { return model_; }

    std::vector<result_type> run_batch(const std::vector<std::vector<std::int64_t>>& prompts,
                                       const RunOptions& o) const {
        if constexpr (is_exact<Op>) {
            validate(prompts);
            const auto P = static_cast<std::int64_t>(prompts.size()),
                       T = static_cast<std::int64_t>(prompts.front().size());
            at::Tensor target;
            {
                c10::InferenceMode no_autograd;
                const at::Tensor ids = at::tensor(prompts | ranges::views::join | ranges::to<std::vector>(), at::kLong)
                                           .view({P, T})
                                           .to(model_.placement().device);
                target = apply_slice(slice_, model_, space_.slice_input(model_, space_.target(model_, ids)),
                                     model_.context(T, true, slice_.variant()));
            }
            return exact_results(target, prompts);
        } else {
            Session session = start(prompts, o);
            return drive(session, o);
        }
    }

    std::vector<Result> drive(Session& session, const RunOptions& o) const {
        while (!session.done()) {
            session.step();
            const int n = session.steps_done();
            if (o.progress && n % o.progress_every == 0) o.progress(n, session.steps());
            if (o.early_stop && n % o.early_stop_every == 0 && session.closer_than_shifted()) break;
        }
        return session.finish();
    }

    struct DecoderCache {
        std::once_flag once;
        typename De::State state;
    };

    Model model_;
    [[no_unique_address]] S slice_;
    [[no_unique_address]] Mt metric_;
    [[no_unique_address]] Op optimizer_;
    [[no_unique_address]] Mk mask_;
    [[no_unique_address]] Sp space_;
    [[no_unique_address]] De decoder_;
    std::optional<Tokenizer> tokenizer_;
    std::shared_ptr<DecoderCache> decoder_cache_ = std::make_shared<DecoderCache>();
    std::shared_ptr<ExactCache> exact_cache_ =
        std::make_shared<ExactCache>();  // exact search's calibration, once per experiment
};

}  // namespace inputrep
