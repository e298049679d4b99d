#pragma once
// Line plots as inline SVG, for every curve a report draws: distance per optimisation step, exact
// recovery against neurons compared, training loss (train and held-out series over steps), sweeps
// (one series per setting, x = depth). Named series with a legend, axis labels, and a log-scale y
// axis for quantities that span orders of magnitude. A point that cannot be drawn (NaN, ±inf, or
// y ≤ 0 on a log axis) breaks its line instead of bending it; short series get markers so a sweep
// of a few depths reads as points.
#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <inputrep/core/error.hpp>
#include <inputrep/report/page.hpp>

namespace inputrep::report {

struct Series {
    std::string name;
    std::vector<double> x, y;
};

struct Plot {
    std::string title, x_label, y_label;
    std::vector<Series> series;
    bool log_y = false;
};

namespace detail {

// At most `n` bytes of `text`, cut at a UTF-8 character boundary, "…" marking the cut.
inline std::string shortened(std::string_view text, std::size_t n) {
    if (text.size() <= n) return std::string(text);
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return fmt::format("{}\u2026", text.substr(0, n));
}

// Ticks at 1, 2 or 5 × 10^k, about `count` of them over [lo, hi] (lo < hi).
inline std::vector<double> nice_ticks(double lo, double hi, int count) {
    const double raw = (hi - lo) / count, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = 10 * magnitude;
    for (const double m : {1.0, 2.0, 5.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    std::vector<double> ticks;
    for (double k = std::ceil(lo / step); k * step <= hi + step * 1e-9; ++k) ticks.push_back(k * step);
    return ticks;
}

}  // namespace detail

inline std::string svg(const Plot& plot) {
    constexpr double W = 640, H = 320, left = 70, right = 170, top = 30, bottom = 45;
    constexpr double plot_w = W - left - right, plot_h = H - top - bottom;
    static constexpr std::array<std::string_view, 8> colours{"#d62728", "#1f77b4", "#2ca02c", "#9467bd",
                                                             "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
    for (const auto& s : plot.series)
        require(s.x.size() == s.y.size(), "plot \"", plot.title, "\": series \"", s.name, "\" has ", s.x.size(),
                " x values but ", s.y.size(), " y values");
    auto drawable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!plot.log_y || y > 0); };
    auto axis_y = [&](double y) { return plot.log_y ? std::log10(y) : y; };  // y in axis units

    constexpr double inf = std::numeric_limits<double>::infinity();
    double x0 = inf, x1 = -inf, y0 = inf, y1 = -inf;
    for (const auto& s : plot.series)
        for (std::size_t i = 0; i < s.x.size(); ++i)
            if (drawable(s.x[i], s.y[i])) {
                x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
                y0 = std::min(y0, axis_y(s.y[i])), y1 = std::max(y1, axis_y(s.y[i]));
            }
    if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to draw: an empty frame
    if (x1 == x0) x0 -= 0.5, x1 += 0.5;
    if (y1 == y0) y0 -= 0.5, y1 += 0.5;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };
    auto py = [&](double axis) { return top + plot_h - (axis - y0) / (y1 - y0) * plot_h; };

    std::string svg;
    auto out = std::back_inserter(svg);
    fmt::format_to(out,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                   "font-family=\"sans-serif\" font-size=\"12\">\n"
                   "<text x=\"{2}\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">{3}</text>\n"
                   "<rect x=\"{4}\" y=\"{5}\" width=\"{6}\" height=\"{7}\" fill=\"none\" stroke=\"#888\"/>\n",
                   W, H, left + plot_w / 2, escaped{plot.title}, left, top, plot_w, plot_h);
    for (const double t : detail::nice_ticks(x0, x1, 5))
        fmt::format_to(out,
                       "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#888\"/>"
                       "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4:.4g}</text>\n",
                       px(t), top + plot_h, top + plot_h + 4, top + plot_h + 17, t);
    // A log axis is labelled at its decades when two or more lie in range, else at 1, 2, 5 (or
    // every digit) times a power of ten, else, for a very short range, at nice values of y.
    std::vector<double> y_ticks;  // values of y
    const double decades = std::floor(y1) - std::ceil(y0) + 1;
    if (plot.log_y && decades >= 2) {
        for (double d = std::ceil(y0); d <= y1; d += std::ceil(decades / 6)) y_ticks.push_back(std::pow(10.0, d));
    } else if (plot.log_y) {
        for (const auto& digits : {std::vector<double>{1, 2, 5}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
            y_ticks.clear();
            for (double d = std::floor(y0); d <= std::ceil(y1); ++d)
                for (const double m : digits)
                    if (const double v = m * std::pow(10.0, d);
                        std::log10(v) >= y0 - 1e-9 && std::log10(v) <= y1 + 1e-9)
                        y_ticks.push_back(v);
            if (y_ticks.size() >= 3) break;
        }
        if (y_ticks.size() < 2) y_ticks = detail::nice_ticks(std::pow(10.0, y0), std::pow(10.0, y1), 4);
    } else {
        y_ticks = detail::nice_ticks(y0, y1, 4);
    }
    for (const double t : y_ticks)
        fmt::format_to(out,
                       "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#888\"/>"
                       "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:.3g}</text>\n",
                       left - 4, py(axis_y(t)), left, left - 6, py(axis_y(t)) + 4, t);
    fmt::format_to(out,
                   "<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">{2}</text>\n"
                   "<text transform=\"translate(14,{3}) rotate(-90)\" text-anchor=\"middle\">{4}{5}</text>\n",
                   left + plot_w / 2, H - 8, escaped{plot.x_label}, top + plot_h / 2, escaped{plot.y_label},
                   plot.log_y ? " (log scale)" : "");

    for (std::size_t k = 0; k < plot.series.size(); ++k) {
        const auto& s = plot.series[k];
        const auto colour = colours[k % colours.size()];
        std::string path, markers;
        bool pen_down = false;
        std::size_t points = 0;
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!drawable(s.x[i], s.y[i])) {
                pen_down = false;
                continue;
            }
            const double x = px(s.x[i]), y = py(axis_y(s.y[i]));
            fmt::format_to(std::back_inserter(path), "{}{:.1f},{:.1f}", pen_down ? " L" : (path.empty() ? "M" : " M"),
                           x, y);
            fmt::format_to(std::back_inserter(markers), "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>",
                           x, y, colour);
            pen_down = true;
            ++points;
        }
        fmt::format_to(out, "<path class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" d=\"{}\"/>{}\n",
                       colour, path, points <= 30 ? markers : std::string());
        const double ly = top + 12 + 18 * double(k);
        fmt::format_to(out,
                       "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"/>"
                       "<text class=\"legend\" x=\"{4}\" y=\"{5}\">{6}</text>\n",
                       W - right + 12, ly - 4, W - right + 30, colour, W - right + 36, ly,
                       escaped{detail::shortened(s.name, 22)});
    }
    svg += "</svg>";
    return svg;
}

}  // namespace inputrep::report
