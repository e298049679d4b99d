#pragma once
// Self-contained HTML reports with inline SVG plots: distance per step of inversions, and
// bandwidth curves. No scripts, no external assets: a report is one file that opens anywhere.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <inputrep/bandwidth.hpp>
#include <inputrep/experiment.hpp>
#include <inputrep/report/escape.hpp>

namespace inputrep::report {

struct Series {
    std::string name;
    std::vector<double> x, y;
};

inline std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, std::abs(v) >= 1e4 || (v != 0 && std::abs(v) < 1e-2) ? "%.2g" : "%.4g", v);
    return buf;
}

// A line plot; `log_y` plots log10(y) (distances span orders of magnitude over a run).
inline std::string svg_plot(const std::vector<Series>& series, std::string_view title, std::string_view x_label,
                            std::string_view y_label, bool log_y) {
    constexpr double W = 640, H = 320, left = 70, right = 150, top = 30, bottom = 45;
    auto ty = [&](double v) { return log_y ? std::log10(std::max(v, 1e-30)) : v; };
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    for (auto& s : series)
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.y[i])) continue;
            x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
            y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
        }
    if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    auto px = [&](double v) { return left + (v - x0) / (x1 - x0) * (W - left - right); };
    auto py = [&](double v) { return H - bottom - (ty(v) - y0) / (y1 - y0) * (H - top - bottom); };
    static const char* colours[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">"
        << "<text x=\"" << W / 2 - right / 2 << "\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">" << escape(title) << "</text>"
        << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << W - left - right << "\" height=\"" << H - top - bottom
        << "\" fill=\"none\" stroke=\"#888\"/>";
    for (int i = 0; i <= 4; ++i) {
        const double fx = x0 + (x1 - x0) * i / 4, fy = y0 + (y1 - y0) * i / 4;
        const double yv = log_y ? std::pow(10.0, fy) : fy;
        svg << "<text x=\"" << px(fx) << "\" y=\"" << H - bottom + 16 << "\" text-anchor=\"middle\">" << number(fx) << "</text>"
            << "<text x=\"" << left - 6 << "\" y=\"" << H - bottom - (fy - y0) / (y1 - y0) * (H - top - bottom) + 4
            << "\" text-anchor=\"end\">" << number(yv) << "</text>";
    }
    svg << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << escape(x_label) << "</text>"
        << "<text transform=\"translate(14," << (top + H - bottom) / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << escape(y_label)
        << (log_y ? " (log scale)" : "") << "</text>";
    for (std::size_t s = 0; s < series.size(); ++s) {
        const char* colour = colours[s % 8];
        svg << "<polyline class=\"series\" fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
        for (std::size_t i = 0; i < series[s].x.size(); ++i)
            if (std::isfinite(series[s].y[i])) svg << px(series[s].x[i]) << "," << py(series[s].y[i]) << " ";
        svg << "\"/><text x=\"" << W - right + 10 << "\" y=\"" << top + 14 + 16 * s << "\" fill=\"" << colour << "\">"
            << escape(series[s].name.substr(0, 22)) << "</text>";
    }
    svg << "</svg>";
    return svg.str();
}

inline std::string page(std::string_view title, const std::string& body) {
    return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + escape(title) +
           "</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}code{white-space:pre}</style></head><body><h1>" +
           escape(title) + "</h1>\n" + body + "\n</body></html>\n";
}

// Distance per step of each result, and a table of what was recovered.
inline std::string inversion_report(std::string_view title, const std::vector<Result>& results, const Tokenizer* tokenizer) {
    std::vector<Series> series;
    std::ostringstream table;
    table << "<table><tr><th>target</th><th>top-1</th><th>exact</th><th>distance</th><th>shifted input</th><th>steps/s</th></tr>";
    for (const auto& r : results) {
        const std::string target = tokenizer ? tokenizer->decode(r.target()) : "";
        Series s{target.empty() ? "prompt " + std::to_string(series.size() + 1) : target, {}, {}};
        const auto trace = r.trace();
        for (std::size_t i = 0; i < trace.size(); ++i) s.x.push_back(double(i)), s.y.push_back(trace(i));
        series.push_back(std::move(s));
        table << "<tr><td><code>" << escape(target) << "</code></td><td><code>" << escape(tokenizer ? r.decoded() : "") << "</code></td><td>"
              << (r.exact() ? "yes" : "no") << " (" << r.exact_tokens() << "/" << r.target().size() << ")</td><td>" << number(r.distance())
              << "</td><td>" << number(r.shifted_distance()) << "</td><td>" << number(r.steps_per_second()) << "</td></tr>";
    }
    table << "</table>";
    return page(title, svg_plot(series, "distance per step", "step", "distance", true) + table.str());
}

inline std::string bandwidth_report(std::string_view title, const BandwidthResult& b) {
    Series s{"exact fraction", {}, {}};
    for (std::size_t i = 0; i < b.curve.shape(0); ++i) s.x.push_back(b.curve(i, 0)), s.y.push_back(b.curve(i, 1));
    std::string summary = "<p>Smallest neuron count k with exact recovery: <b>" +
                          (b.k > 0 ? std::to_string(b.k) : std::string("none")) + "</b> of " + std::to_string(b.d_model) + ".</p>";
    return page(title, summary + svg_plot({s}, "exactly recovered tokens against compared neurons", "neurons k (Neurons<0, k>)",
                                          "fraction of tokens", false));
}

inline void write(const std::filesystem::path& path, const std::string& html) {
    std::ofstream out(path);
    require(out.good(), path.string(), ": cannot write the report");
    out << html;
}

}  // namespace inputrep::report
