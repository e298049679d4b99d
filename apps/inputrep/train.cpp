// inputrep train / inputrep eval — training small models on text and measuring them (docs/training.md).
//
//   inputrep train --family gpt2|llama|mixer [--config key=value,...] [--corpus brown|fortunes|FILE...] [--tokenizer DIR | --vocab-size N]
//                  --steps N --batch B --context T --lr X --seed S --out DIR [--resume]
//   inputrep eval  --model DIR [--corpus FILE...] [--sample TEXT...] [--json]
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.hpp"

#include <inputrep/model/families.hpp>
#include <inputrep/train/train.hpp>

using namespace inputrep;

namespace {

// --corpus values as files: "brown" (the default) and "fortunes" name the built-in corpora, any other
// value is a file (./brown for a file of that name).
std::vector<std::filesystem::path> corpus_files(const std::vector<std::string>& values) {
    const char* env = std::getenv("INPUTREP_DATA");
    const std::filesystem::path data = env ? env : INPUTREP_DATA_DIR;
    std::vector<std::filesystem::path> files;
    for (const auto& v : values.empty() ? std::vector<std::string>{"brown"} : values) {
        if (v == "brown" || v == "fortunes") {
            for (auto& f : train::named_corpus(v, data)) files.push_back(f);
        } else {
            files.emplace_back(v);
        }
    }
    return files;
}

std::string duration(double seconds) {
    const auto s = static_cast<long>(std::lround(seconds));
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    return buf;
}

struct TrainArgs {
    std::string family, config, decay = "cosine";
    std::vector<std::string> corpus;
    std::string tokenizer;
    std::int64_t vocab_size = 4096;
    int threads = 1;
    bool json = false, vocab_size_given = false;
    train::TrainOptions o;
};

template <class F>
void run_train(const TrainArgs& a) {
    auto o = a.o;
    auto config = config_with<F>(a.config);
    // The vocabulary: --config vocab_size when given (at least the reused tokenizer's), else the
    // reused tokenizer's size, else --vocab-size pieces of a SentencePiece BPE trained here.
    const auto overrides = parse_overrides(a.config);
    if (std::ranges::any_of(overrides, [](const auto& kv) { return kv.first == "vocab_size"; }))
        require(!a.vocab_size_given, "--config vocab_size and --vocab-size both give the vocabulary size: give one");
    else
        config.vocab_size = a.tokenizer.empty() ? a.vocab_size : Tokenizer::from_folder(a.tokenizer).vocab_size();
    if (!a.tokenizer.empty()) o.tokenizer = a.tokenizer;
    const auto files = corpus_files(a.corpus);
    const std::int64_t every = std::max<std::int64_t>(1, o.steps / 50);
    const bool tty = isatty(STDERR_FILENO);
    o.progress = [&](const train::LogEntry& e) {
        if (!tty && e.step % every != 0 && !e.held_out && e.step != o.steps) return;
        std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f%s  lr %.2e  %.0f tok/s  ETA %s%s", tty ? "\r\033[K" : "",
                     (long long)e.step, (long long)o.steps, e.loss,
                     e.held_out ? ("  held-out " + std::to_string(*e.held_out)).c_str() : "", e.lr, e.tokens_per_second,
                     duration(e.eta_seconds).c_str(), tty && !e.held_out ? "" : "\n");
    };
    auto r = train::train<F>(config, files, o);
    if (tty) std::fprintf(stderr, "\n");
    Json summary{{"out", std::filesystem::absolute(o.out).string()},
                 {"steps", r.log.empty() ? 0 : r.log.back().step},
                 {"loss", r.log.empty() ? 0.0 : r.log.back().loss},
                 {"held_out", r.held_out},
                 {"tokens_per_second", r.tokens_per_second}};
    if (a.json)
        std::cout << summary.dump() << "\n";
    else
        std::cout << "trained " << F::family << " to step " << summary["steps"] << ": held-out cross-entropy "
                  << r.held_out << " nats/token, " << std::lround(r.tokens_per_second) << " tokens/s; the model is in "
                  << summary["out"].get<std::string>() << "\n";
}

struct EvalArgs {
    std::string model;
    at::Device device = at::kCPU;
    std::vector<std::string> corpus, samples;
    int sample_tokens = 32, threads = 1;
    bool json = false;
};

template <class F>
void run_eval(const EvalArgs& a) {
    const auto files = corpus_files(a.corpus);
    const Placement placement{a.device, at::kFloat};
    if (placement.device.is_cpu()) {
        // The memory check hidden and invert make, before the model is built.
        const auto config = F::Config::from_json(read_config(a.model));
        check_memory(F::estimated_bytes(config, Needs{{0, config.layers()}, true, true}, at::kFloat), false);
    }
    const auto ev = train::evaluate<F>(a.model, files, placement);
    Json j{{"cross_entropy", ev.cross_entropy},
           {"perplexity", std::exp(ev.cross_entropy)},
           {"bigram_cross_entropy", ev.bigram},
           {"bigram_perplexity", std::exp(ev.bigram)},
           {"tokens", ev.tokens},
           {"contexts", ev.contexts},
           {"samples", Json::array()}};
    if (!a.samples.empty()) {
        const auto model = load<F>(a.model, placement);
        const auto tokenizer = Tokenizer::from_folder(a.model);
        const auto state = std::filesystem::path(a.model) / "trainer_state.json";
        const auto bos =
            json_field<std::int64_t>(train::read_trainer_state(state).run, "bos", state.string() + ": \"run\"");
        for (const auto& text : a.samples) {
            std::vector<std::int64_t> ids;
            if (bos >= 0) ids.push_back(bos);
            for (auto id : tokenizer.encode(text)) ids.push_back(id);
            require(ids.size() > 0, "--sample: empty prompt and the tokenizer has no BOS");
            const int steps = static_cast<int>(
                std::min<std::int64_t>(a.sample_tokens, model.context_length() - std::int64_t(ids.size())));
            require(steps > 0, "--sample \"", text, "\" fills the model's context of ", model.context_length(),
                    " tokens");
            const auto all = generate(model, ids, steps);
            j["samples"].push_back({{"prompt", text}, {"text", tokenizer.decode(all)}});
        }
    }
    if (a.json) {
        std::cout << j.dump() << "\n";
        return;
    }
    std::printf("held-out cross-entropy %.4f nats/token (perplexity %.2f) over %lld tokens in %lld contexts\n",
                ev.cross_entropy, std::exp(ev.cross_entropy), (long long)ev.tokens, (long long)ev.contexts);
    std::printf("bigram baseline (training split) %.4f nats/token (perplexity %.2f)\n", ev.bigram, std::exp(ev.bigram));
    for (auto& s : j["samples"]) std::printf("sample: %s\n", s["text"].get<std::string>().c_str());
}

}  // namespace

namespace cli {

void register_train(CLI::App& app) {
    constexpr std::int64_t many = 1'000'000'000;  // steps, intervals: beyond any run on one machine
    auto t = std::make_shared<TrainArgs>();
    auto* train = app.add_subcommand("train", "train a model of any family on text (docs/training.md)");
    train->add_option("--family", t->family, "the family, as config.json's model_type names it")
        ->required()
        ->check(CLI::IsMember(model_type_names()));
    train->add_option("--config", t->config,
                      "config.json overrides key=value,... (e.g. n_embd=128,n_layer=4,n_head=4)");
    train
        ->add_option("--corpus", t->corpus,
                     "brown (default: the Brown corpus), fortunes (Debian's), or files: text, fortune (%), "
                     "<|endoftext|>, Brown-tagged or .ids")
        ->expected(1, -1);
    auto* tok = train
                    ->add_option("--tokenizer", t->tokenizer,
                                 "reuse this folder's tokenizer (its vocabulary size is the model's)")
                    ->check(CLI::ExistingDirectory);
    add_number(*train, "--vocab-size", t->vocab_size, std::int64_t{1}, std::int64_t{1} << 24,
               "train a SentencePiece BPE tokenizer of this many pieces (default 4096)")
        ->excludes(tok);
    add_number(*train, "--steps", t->o.steps, std::int64_t{1}, many, "optimizer steps")->required();
    add_number(*train, "--batch", t->o.batch, std::int64_t{1}, std::int64_t{1} << 16,
               "contexts per micro-batch (default 16)");
    add_number(*train, "--accumulate", t->o.accumulation, std::int64_t{1}, std::int64_t{1} << 16,
               "micro-batches per step (default 1)");
    add_number(*train, "--context", t->o.context, std::int64_t{1}, std::int64_t{1} << 20,
               "tokens per context (default 64)");
    add_number(*train, "--lr", t->o.lr, 0.0, 10.0, "peak learning rate (default 1e-3)", Ends::open_low);
    add_number(*train, "--min-lr-ratio", t->o.min_lr_ratio, 0.0, 1.0, "final rate / peak rate (default 0.1)");
    add_number(*train, "--warmup", t->o.warmup, std::int64_t{0}, many, "linear warmup steps (default 100)");
    train->add_option("--decay", t->decay, "cosine (default), linear or constant")
        ->check(CLI::IsMember({"cosine", "linear", "constant"}));
    add_number(*train, "--weight-decay", t->o.adamw.weight_decay, 0.0, 100.0,
               "AdamW decoupled weight decay on matrices (default 0.1)");
    add_number(*train, "--clip", t->o.clip, 0.0, 1e6, "global gradient-norm clip, 0 for none (default 1)");
    add_number(*train, "--seed", t->o.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
               "seed of the initial weights and the data order (default 0)");
    add_number(*train, "--held-out", t->o.held_out, 0.0, 1.0, "fraction of documents held out (default 0.05)",
               Ends::open);
    train->add_flag("--padded", t->o.padded, "one document per context, padded, instead of packed");
    add_number(*train, "--checkpoint-every", t->o.checkpoint_every, std::int64_t{0}, many,
               "steps between checkpoints (default 0: the end only)");
    add_number(*train, "--eval-every", t->o.eval_every, std::int64_t{0}, many,
               "steps between held-out evaluations (default 100)");
    add_number(*train, "--eval-contexts", t->o.eval_contexts, std::int64_t{0}, many,
               "held-out contexts per evaluation (default 64, 0: all)");
    add_number(*train, "--until", t->o.until, std::int64_t{0}, many,
               "stop after this step with a checkpoint; --resume continues");
    add_parsed(
        *train, "--out", t->o.out, [](std::string_view s) { return cli::output_folder("--out", s); },
        "the model folder to write")
        ->type_name("DIR")
        ->required();
    train->add_flag("--resume", t->o.resume, "continue the run checkpointed in --out");
    add_parsed(*train, "--device", t->o.device, parse_device,
               "cpu (default) or cuda[:N]; CUDA computes under bf16 autocast");
    add_number(*train, "--threads", t->threads, 1, 256, "libtorch intra-op threads (default 1)");
    train->add_flag("--ignore-memory-check", t->o.ignore_memory,
                    "train even when the weights, gradients and AdamW moments (estimated before any is allocated) "
                    "exceed MemAvailable");
    train->add_flag("--json", t->json, "print one JSON object when done");
    train->callback([t, train] {
        // Every step frees and reallocates the same activation sizes. By default glibc hands them
        // back to the kernel and faults the pages in again next step: ~20 % of a step here (measured,
        // docs/training.md). Keep them in the heap.
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_TOP_PAD, 64 << 20);
        t->vocab_size_given = train->count("--vocab-size") > 0;
        at::set_num_threads(t->threads);
        t->o.decay = train::parse_decay(t->decay);
        with_model_type(t->family, [&]<class F>() { run_train<F>(*t); });
    });

    auto e = std::make_shared<EvalArgs>();
    auto* eval = app.add_subcommand("eval", "held-out cross-entropy of a trained folder, with the bigram baseline");
    eval->add_option("--model", e->model, "a folder `inputrep train` wrote")->required()->check(CLI::ExistingDirectory);
    eval->add_option("--corpus", e->corpus, "the corpus it was trained on: brown (default), fortunes, or files")
        ->expected(1, -1);
    eval->add_option("--sample", e->samples, "print the greedy continuation of this text (repeatable)");
    add_number(*eval, "--sample-tokens", e->sample_tokens, 1, 1 << 20, "tokens per sample (default 32)");
    add_parsed(*eval, "--device", e->device, parse_device, "cpu (default) or cuda[:N]");
    add_number(*eval, "--threads", e->threads, 1, 256, "libtorch intra-op threads (default 1)");
    eval->add_flag("--json", e->json, "print one JSON object");
    eval->callback([e] {
        at::set_num_threads(e->threads);
        const auto family = config_value<std::string>(read_config(e->model), "model_type", "gpt2");
        with_model_type(family, [&]<class F>() { run_eval<F>(*e); });  // the folder's family
    });
}

}  // namespace cli
