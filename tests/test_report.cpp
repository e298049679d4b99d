// The report layer: escaping, the page skeleton and the SVG plot writer, read back by Python's
// parsers (tests/html_check.hpp).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <inputrep/report/page.hpp>
#include <inputrep/report/plot.hpp>

#include "common.hpp"
#include "html_check.hpp"

using inputrep::Error;
using testing::says;
namespace rep = inputrep::report;  // the suite below is named report too

namespace {

std::size_t count(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
    return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(report)

BOOST_AUTO_TEST_CASE(text_is_escaped_for_html) {
    BOOST_TEST(rep::escape("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
    BOOST_TEST(fmt::format("<td>{}</td>", rep::escaped{"a < b"}) == "<td>a &lt; b</td>");
    const auto page = rep::page("<title> & more", "<p>body</p>");
    BOOST_TEST(count(page, "&lt;title&gt; &amp; more") == 2u);  // <title> and <h1>
    BOOST_TEST(testing::html_token_texts(page).empty());
}

// Training's curves: train loss every step and held-out loss every tenth, on a log axis.
BOOST_AUTO_TEST_CASE(loss_curves_on_a_log_axis) {
    rep::Plot plot{.title = "loss <nats>", .x_label = "step", .y_label = "cross-entropy", .log_y = true};
    rep::Series train{"train", {}, {}}, held_out{"held-out & co", {}, {}};
    for (int step = 0; step <= 100; ++step) {
        train.x.push_back(step), train.y.push_back(10 * std::pow(0.001, step / 100.0));
        if (step % 10 == 0) held_out.x.push_back(step), held_out.y.push_back(12 * std::pow(0.001, step / 100.0));
    }
    plot.series = {train, held_out};
    const auto svg = rep::svg(plot);
    testing::check_well_formed_xml(svg);
    BOOST_TEST(count(svg, "class=\"series\"") == 2u);
    BOOST_TEST(count(svg, "class=\"legend\"") == 2u);
    for (const char* text :
         {">train<", ">held-out &amp; co<", "loss &lt;nats&gt;", ">step<", "cross-entropy (log scale)"})
        BOOST_TEST_CONTEXT(text) BOOST_TEST(svg.find(text) != std::string::npos);
    // The y axis is labelled at its decades: 10^-2 ... 10.
    for (const char* decade : {">0.01<", ">0.1<", ">1<", ">10<"})
        BOOST_TEST_CONTEXT(decade) BOOST_TEST(svg.find(decade) != std::string::npos);
    BOOST_TEST(count(svg, "<circle") == 11u);  // markers on the short held-out series only
}

// Less than two decades in range: labels at 1, 2 and 5 times a power of ten, not one lone decade.
BOOST_AUTO_TEST_CASE(a_short_log_axis_is_labelled_at_1_2_5) {
    const auto svg = rep::svg({.title = "loss",
                               .x_label = "step",
                               .y_label = "nats",
                               .series = {{"train", {0, 1, 2}, {8.5, 1.3, 0.18}}},
                               .log_y = true});
    for (const char* label : {">0.2<", ">0.5<", ">1<", ">2<", ">5<"})
        BOOST_TEST_CONTEXT(label) BOOST_TEST(svg.find(label) != std::string::npos);
    BOOST_TEST(svg.find(">10<") == std::string::npos);
}

// Sweeps: several series over depth, on a linear axis; a point that cannot be drawn breaks its line.
BOOST_AUTO_TEST_CASE(sweep_series_and_gaps) {
    rep::Plot plot{.title = "exact recovery by depth", .x_label = "depth", .y_label = "fraction exact"};
    for (const char* name : {"GPT-2", "Llama", "mixer"}) {
        rep::Series s{name, {}, {}};
        for (int depth = 0; depth <= 12; ++depth) s.x.push_back(depth), s.y.push_back(1.0 - depth / 24.0);
        plot.series.push_back(s);
    }
    plot.series[1].y[5] = std::numeric_limits<double>::quiet_NaN();
    const auto svg = rep::svg(plot);
    testing::check_well_formed_xml(svg);
    BOOST_TEST(count(svg, "class=\"series\"") == 3u);
    BOOST_TEST(count(svg, "<circle") == 38u);  // 3 × 13 points, less the NaN
    BOOST_TEST(count(svg, " M") == 1u);        // Llama's line lifts once, at the NaN

    plot.log_y = true;  // zero cannot sit on a log axis: it breaks the line too
    plot.series[0].y[3] = 0;
    BOOST_TEST(count(rep::svg(plot), " M") == 2u);

    plot.series[2].y.pop_back();
    BOOST_CHECK_EXCEPTION(rep::svg(plot), Error, says("series \"mixer\" has 13 x values but 12 y values"));
}

// A long name is cut for the legend at a character boundary, never inside one.
BOOST_AUTO_TEST_CASE(long_names_are_cut_between_characters) {
    const std::string name = "été à la plage,   é écrit-il, très long";
    const auto svg = rep::svg({.title = "t", .x_label = "x", .y_label = "y", .series = {{name, {0, 1}, {1, 2}}}});
    testing::check_well_formed_xml(svg);  // Python decodes it as UTF-8: a split character would fail here
    BOOST_TEST(svg.find("\u2026</text>") != std::string::npos);
    BOOST_TEST(svg.find(name) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_empty_plot_is_an_empty_frame) {
    const auto svg = rep::svg({.title = "nothing yet", .x_label = "x", .y_label = "y", .series = {{"none", {}, {}}}});
    testing::check_well_formed_xml(svg);
    BOOST_TEST(count(svg, "class=\"series\"") == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
