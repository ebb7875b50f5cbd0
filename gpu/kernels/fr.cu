// Kernels on arrays of Fr elements (4 limbs, Montgomery form, the zk.field layout): elementwise
// arithmetic, batch inversion, and the multilinear-extension / sumcheck primitives.
//
// MLE tables are flattened tensors in C order whose first variable is the most significant index
// bit, so binding it splits a table of size 2 * half into t[i] (x_0 = 0) and t[i + half] (x_0 = 1).
#include "field.cuh"

#define FR_ADD 0
#define FR_SUB 1
#define FR_MUL 2
#define ROUND_MAX_TABLES 3
#define ROUND_MAX_POINTS 9  // evaluations at 0..degree, degree <= 8

// out[i] = a[i * sa] op b[i * sb]  (sa, sb in {0, 1}: 0 broadcasts one element).
ZK_KERNEL(fr_binary, u64 op, u64 sa, u64 sb, const Fr* a, const Fr* b, Fr* out) {
    ZK_THREAD_LOOP(i) {
        Fr x = a[i * sa], y = b[i * sb];
        out[i] = op == FR_MUL ? fe_mul(x, y) : op == FR_ADD ? fe_add(x, y) : fe_sub(x, y);
    }
}

// out[i] = 1 / a[i] (0 for a[i] = 0) by Montgomery's trick: thread t inverts the strided chunk
// i = t, t + n_threads, ... < n with one Fermat inversion and three multiplications per element.
ZK_KERNEL(fr_batch_inv, u64 n, const Fr* a, Fr* out) {
    ZK_THREAD_LOOP(t) {
        if (t >= n) continue;
        u64 count = (n - 1 - t) / n_threads + 1;
        Fr acc = fe_one<FrP>();
        for (u64 q = 0; q < count; ++q) {
            u64 i = t + q * n_threads;
            out[i] = acc;  // product of the chunk's nonzero elements before i
            if (!fe_is_zero(a[i])) acc = fe_mul(acc, a[i]);
        }
        Fr inv = fe_inv(acc);  // 1 / (product of the chunk's nonzero elements)
        for (u64 q = count; q-- > 0;) {
            u64 i = t + q * n_threads;
            if (fe_is_zero(a[i])) {
                out[i] = fe_zero<FrP>();
            } else {
                out[i] = fe_mul(out[i], inv);
                inv = fe_mul(inv, a[i]);
            }
        }
    }
}

// Bind the first variable to c: out[i] = t[i] + c (t[i + half] - t[i]), i < half = n_threads.
ZK_KERNEL(fr_fold, const Fr* table, const Fr* c, Fr* out) {
    ZK_THREAD_LOOP(i) {
        Fr lo = table[i];
        out[i] = fe_add(lo, fe_mul(c[0], fe_sub(table[i + n_threads], lo)));
    }
}

// One step of the eq table: out[2i + b] = prev[i] * (b ? p : 1 - p), for 2i + b < n_threads.
// Starting from [1] and applying the point's coordinates in order makes the first one the most
// significant index bit: out[x] = prod_j (x_j p_j + (1 - x_j)(1 - p_j)).
ZK_KERNEL(fr_eq_step, const Fr* prev, const Fr* p, Fr* out) {
    ZK_THREAD_LOOP(i) {
        Fr w = (i & 1) ? p[0] : fe_sub(fe_one<FrP>(), p[0]);
        out[i] = fe_mul(prev[i >> 1], w);
    }
}

// Partial sums of a sumcheck round polynomial.  For tables f_0..f_{k-1} (k <= 3) of size 2 * half,
//   g(x) = sum_{i < half} prod_j (f_j[i] + x (f_j[i + half] - f_j[i])),
// thread t sums the terms i = t, t + n_threads, ... at x = 0..degree into
// partial[t * (degree + 1) + x].
ZK_KERNEL(fr_round_partial, u64 half, u64 k, u64 degree, const Fr* f0, const Fr* f1, const Fr* f2,
          Fr* partial) {
    ZK_THREAD_LOOP(t) {
        const Fr* tables[ROUND_MAX_TABLES] = {f0, f1, f2};
        Fr acc[ROUND_MAX_POINTS];
        for (u64 x = 0; x <= degree; ++x) acc[x] = fe_zero<FrP>();
        for (u64 i = t; i < half; i += n_threads) {
            Fr val[ROUND_MAX_TABLES], diff[ROUND_MAX_TABLES];
            for (u64 j = 0; j < k; ++j) {
                val[j] = tables[j][i];
                diff[j] = fe_sub(tables[j][i + half], val[j]);
            }
            for (u64 x = 0; x <= degree; ++x) {
                Fr prod = val[0];
                for (u64 j = 1; j < k; ++j) prod = fe_mul(prod, val[j]);
                acc[x] = fe_add(acc[x], prod);
                for (u64 j = 0; j < k; ++j) val[j] = fe_add(val[j], diff[j]);
            }
        }
        for (u64 x = 0; x <= degree; ++x) partial[t * (degree + 1) + x] = acc[x];
    }
}

// Sum groups of `fan` consecutive rows of an (n, width) array: thread (o, w) writes
// out[o * width + w] = sum_{i in [o fan, min(n, (o + 1) fan))} in[i * width + w].
ZK_KERNEL(fr_sum_rows, u64 n, u64 width, u64 fan, const Fr* in, Fr* out) {
    ZK_THREAD_LOOP(tid) {
        u64 o = tid / width, w = tid % width;
        u64 end = (o + 1) * fan < n ? (o + 1) * fan : n;
        Fr acc = fe_zero<FrP>();
        for (u64 i = o * fan; i < end; ++i) acc = fe_add(acc, in[i * width + w]);
        out[tid] = acc;
    }
}

// Partial vector-matrix products: thread t = k * cols + j writes
// out[t] = sum_{i in [k span, min(rows, (k + 1) span))} v[i] m[i * cols + j];
// summing out over k (fr_sum_rows) gives v^T M, the row combination of a Hyrax opening.
ZK_KERNEL(fr_vecmat_partial, u64 rows, u64 cols, u64 span, const Fr* v, const Fr* m, Fr* out) {
    ZK_THREAD_LOOP(t) {
        u64 k = t / cols, j = t % cols;
        u64 end = (k + 1) * span < rows ? (k + 1) * span : rows;
        Fr acc = fe_zero<FrP>();
        for (u64 i = k * span; i < end; ++i) acc = fe_add(acc, fe_mul(v[i], m[i * cols + j]));
        out[t] = acc;
    }
}

// Signed 64-bit integers to Fr: out[i] = v[i] mod r in Montgomery form (the zk.field.from_int
// encoding), |v| taken without overflow at -2^63.
ZK_KERNEL(fr_from_i64, const long long* v, Fr* out) {
    ZK_THREAD_LOOP(i) {
        long long x = v[i];
        Fr mag = fe_zero<FrP>();
        mag.v[0] = x < 0 ? (u64)0 - (u64)x : (u64)x;
        Fr m = fe_to_mont(mag);
        out[i] = x < 0 ? fe_neg(m) : m;
    }
}
