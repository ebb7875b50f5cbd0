// Pippenger multi-scalar multiplication on G1, batched: R rows of m scalars against the same m
// affine points (a Hyrax commitment is one MSM per row; a single MSM is R = 1).
//
// Schedule (gpu/ops.py drives it, identically for the GPU and the host build):
//  1. msm_signed_bits: bit length of each scalar's centered representative |s| (s in (-r/2, r/2)).
//     The host picks the window c and the number of windows W = ceil((bits + 1) / c) from the
//     largest one, so bit and small scalars take one window: that is the small-scalar fast path.
//  2. msm_digits: signed c-bit digits d_j in [-(B - 1), B], B = 2^(c-1), with sum_j d_j 2^(cj) = s.
//     A nonzero digit becomes an entry: key = bucket id (row, window, |d| - 1), value = point
//     index with the sign in bit 31.  Zero digits get the key R W B (sorted last, dropped).
//  3. The host sorts entries by key (xp.argsort) and counts them per bucket (xp.bincount).
//  4. msm_task_sum_*: segmented sums in levels.  Each segment (bucket) of n entries is cut into
//     ceil(n / L) tasks of at most L entries; one thread sums one task.  The task sums are the
//     next level's entries, so after ceil(log_L m) levels every bucket is one point (or none), and
//     a bucket holding many entries (equal scalars, bits) is still summed in parallel.
//  5. msm_bucket_reduce: each thread takes G consecutive buckets of one (row, window) and forms
//     sum_b (b + 1) B_b over them by the running-sum trick plus a small multiple for the offset.
//  6. The per-thread results of a (row, window) are summed by step 4 again (Jacobian entries).
//  7. msm_combine: per row, Horner over windows (c doublings each) and conversion to affine.
#include "g1.cuh"

#define MSM_SIGN 0x80000000u

// Canonical |s| of the centered representative of s (Montgomery Fr); *neg says s > r/2.
ZK_HD Fr centered_magnitude(const Fr& s, bool* neg) {
    Fr x = fe_from_mont(s);
    Fr nx = fe_from_mont(fe_neg(s));
    *neg = !fe_eq(x, nx) && limbs_geq(x, nx);
    return *neg ? nx : x;
}

ZK_HD u32 bit_length(const Fr& x) {
    for (int l = 3; l >= 0; --l) {
        if (x.v[l]) {
            u32 b = 0;
            while (b < 64 && (x.v[l] >> b)) ++b;
            return 64 * l + b;
        }
    }
    return 0;
}

ZK_KERNEL(msm_signed_bits, const Fr* scalars, u32* out) {
    ZK_THREAD_LOOP(i) {
        bool neg;
        out[i] = bit_length(centered_magnitude(scalars[i], &neg));
    }
}

// Bits [lo, lo + c) of a 256-bit integer (c <= 32).
ZK_HD u64 window_bits(const Fr& x, u64 lo, u64 c) {
    u64 l = lo / 64, sh = lo % 64;
    if (l >= 4) return 0;
    u64 w = x.v[l] >> sh;
    if (sh + c > 64 && l + 1 < 4) w |= x.v[l + 1] << (64 - sh);
    return w & ((1ull << c) - 1);
}

// Entry (key, value) for every (scalar idx = row * m + col, window j) at keys/vals[idx * W + j].
ZK_KERNEL(msm_digits, u64 m, u64 c, u64 W, const Fr* scalars, u32* keys, u32* vals) {
    ZK_THREAD_LOOP(idx) {
        bool neg;
        Fr mag = centered_magnitude(scalars[idx], &neg);
        u64 row = idx / m, col = idx % m;
        u64 B = 1ull << (c - 1);
        u64 empty = n_threads / m * W * B;
        u64 carry = 0;
        for (u64 j = 0; j < W; ++j) {
            u64 w = window_bits(mag, c * j, c) + carry;
            bool dneg = false;
            carry = w > B;
            if (carry) {  // w - 2^c, in [-(B - 1), 0]
                w = (1ull << c) - w;
                dneg = true;
            }
            u64 e = idx * W + j;
            if (w == 0) {
                keys[e] = (u32)empty;
                vals[e] = 0;
            } else {
                keys[e] = (u32)((row * W + j) * B + (w - 1));
                vals[e] = (u32)col | ((dneg != neg) ? MSM_SIGN : 0u);
            }
        }
    }
}

// Task t < task_off[nseg] of segment s covers entries [seg_off[s] + k L, min(seg_off[s + 1], ...)),
// k = t - task_off[s]; threads past the last task do nothing (the host launches an upper bound).
ZK_HD bool task_range(u64 t, u64 nseg, u64 L, const u64* task_off, const u64* seg_off, u64* begin,
                      u64* end) {
    if (t >= task_off[nseg]) return false;
    u64 s = find_range(task_off, nseg, t);
    *begin = seg_off[s] + (t - task_off[s]) * L;
    *end = *begin + L < seg_off[s + 1] ? *begin + L : seg_off[s + 1];
    return true;
}

// First level: entries are signed indices into the affine points.
ZK_KERNEL(msm_task_sum_affine, u64 nseg, u64 L, const u64* task_off, const u64* seg_off,
          const Affine* pts, const u32* vals, Jac* out) {
    ZK_THREAD_LOOP(t) {
        u64 begin, end;
        if (!task_range(t, nseg, L, task_off, seg_off, &begin, &end)) continue;
        Jac acc = jac_inf();
        for (u64 e = begin; e < end; ++e) {
            u32 v = vals[e];
            Affine p = pts[v & ~MSM_SIGN];
            acc = jac_add_affine(acc, (v & MSM_SIGN) ? affine_neg(p) : p);
        }
        out[t] = acc;
    }
}

// Later levels: entries are Jacobian points.
ZK_KERNEL(msm_task_sum_jac, u64 nseg, u64 L, const u64* task_off, const u64* seg_off, const Jac* in,
          Jac* out) {
    ZK_THREAD_LOOP(t) {
        u64 begin, end;
        if (!task_range(t, nseg, L, task_off, seg_off, &begin, &end)) continue;
        Jac acc = in[begin];
        for (u64 e = begin + 1; e < end; ++e) acc = jac_add(acc, in[e]);
        out[t] = acc;
    }
}

// The sum of segment s after the last level: its single task's point, or infinity.
ZK_HD Jac segment_value(u64 s, const u64* task_off, const Jac* sums) {
    return task_off[s + 1] > task_off[s] ? sums[task_off[s]] : jac_inf();
}

// Thread g = rw * M + q: out[g] = sum_{b in [qG, min(B, (q + 1) G))} (b + 1) bucket(rw, b).
ZK_KERNEL(msm_bucket_reduce, u64 B, u64 G, u64 M, const u64* task_off, const Jac* sums, Jac* out) {
    ZK_THREAD_LOOP(g) {
        u64 rw = g / M, q = g % M;
        u64 lo = q * G, hi = lo + G < B ? lo + G : B;
        Jac running = jac_inf(), total = jac_inf();
        for (u64 b = hi; b-- > lo;) {
            running = jac_add(running, segment_value(rw * B + b, task_off, sums));
            total = jac_add(total, running);  // bucket b counted (b - lo + 1) times
        }
        out[g] = jac_add(total, jac_mul_small(running, lo));
    }
}

// Thread = row: sum_j 2^(cj) window(row, j), as an affine point.
ZK_KERNEL(msm_combine, u64 W, u64 c, const u64* task_off, const Jac* sums, Affine* out) {
    ZK_THREAD_LOOP(row) {
        Jac acc = jac_inf();
        for (u64 j = W; j-- > 0;) {
            for (u64 k = 0; k < c; ++k) acc = jac_double(acc);
            acc = jac_add(acc, segment_value(row * W + j, task_off, sums));
        }
        out[row] = jac_to_affine(acc);
    }
}
