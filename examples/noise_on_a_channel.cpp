// Seed §"Noise on a Discreet Channel": the fewest output neurons that still determine the prompt
// (bisection over Neurons<0, k>), with the curve written as an HTML report. The run
// docs/reproduction.md reports: an untrained GPT-2 block of width 64, "The sky is blue.", 200 Adam
// steps per k. (The seed's was trained Llama-7B, width 4096, on "Mario the man versus Mario the
// idea": 2202 features.)
#include <iostream>

#include <inputrep/inputrep.hpp>
#include <inputrep/report/html.hpp>

using namespace inputrep;

int main() {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    auto model = untrained<GPT2>(config_with<GPT2>("n_layer=1,n_embd=64,n_head=4"), {}, 0, Blocks<0, 1>{});
    BandwidthOptions options;
    options.run.steps = 200;
    options.progress = [](std::int64_t k, double f) { std::cout << "k=" << k << ": " << f << " of tokens exact\n"; };
    auto r = bandwidth_sweep(model, Blocks<0, 1>{}, tok.encode("The sky is blue."), options);
    std::cout << "smallest k: " << r.k << " of " << r.d_model << "\n";
    report::write("bandwidth.html", report::bandwidth_report("bandwidth of an untrained GPT-2 block", r));
    // The seed's finding: fewer output features than the width still determine the prompt.
    return r.k < r.d_model ? 0 : 1;
}
