#pragma once

namespace inputrep {

// lr_i = start·(N−i)/N + end·i/N — the seed's linear decay (the last step never quite reaches end).
struct Schedule {
    double start = 0, end = 0;
    double at(int i, int n) const { return start * double(n - i) / n + end * double(i) / n; }
};

// What recovers best for a model family when the user sets nothing (measured; see docs/defaults.md).
struct InversionDefaults {
    int steps = 500;
    double init_scale = 0.02;
    Schedule adam{0.01, 0.0};
    Schedule gradient_descent{1.0, 0.1};
};

}  // namespace inputrep
