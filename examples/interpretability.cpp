// Seed §"Model Interpretability": which input tokens drive the next-token prediction — gradient ×
// input, occlusion and their combination — written as a coloured HTML page.
#include <iostream>

#include <inputrep/inputrep.hpp>

using namespace inputrep;

int main(int argc, char** argv) {
    auto tok = Tokenizer::from_folder(std::filesystem::path(INPUTREP_DATA_DIR) / "gpt2");
    // Pass a GPT-2 folder for the seed's trained model; untrained GPT-2 small otherwise.
    GPT2 model = argc > 1 ? load<GPT2>(argv[1]) : untrained<GPT2>(GPT2Config{}, {}, 0, Needs{{0, 12}, true, true});
    auto ids = tok.encode("The wipers on the bus go swish swish");
    std::vector<std::int64_t> predicted;
    for (auto method :
         {AttributionMethod::gradient_x_input, AttributionMethod::occlusion, AttributionMethod::combined}) {
        auto r = attribute(model, ids, method);
        std::cout << method_name(method) << ":";
        for (auto s : r.normalised) std::cout << " " << s;
        std::cout << "  -> " << tok.decode(std::vector<std::int64_t>{r.predicted}) << "\n";
        if (method == AttributionMethod::combined) write_attribution_html("attribution.html", r, tok);
        predicted.push_back(r.predicted);
    }
    // Three readings of one prediction: each method attributes the same predicted token.
    const bool holds = std::ranges::count(predicted, predicted[0]) == 3;
    std::cout << "one prediction attributed three ways: " << (holds ? "holds" : "does not hold") << "\n";
    return holds ? 0 : 1;
}
