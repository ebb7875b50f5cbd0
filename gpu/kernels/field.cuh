// Montgomery arithmetic over a prime field with N 64-bit limbs, generic over a parameter struct P.
//
// An element is Fe<P>: N little-endian limbs of its Montgomery form x * 2^(64N) mod p, always fully
// reduced into [0, p), so equal elements have equal limbs.  This is the layout of zk.field for Fr
// (N = 4), and G1 coordinates use the same scheme over Fp (N = 6).
//
// Multiplication is CIOS with the "no-carry" shortcut, valid because both moduli have a top limb
// below 2^63 - 1 (so intermediate values fit in N limbs plus one carry word).
#pragma once
#include "common.cuh"

template <class P>
struct Fe {
    u64 v[P::N];
};

// BLS12-381 scalar field r (255 bits).
struct FrP {
    static const int N = 4;
    static const u64 INV = 0xfffffffeffffffffull;  // -r^-1 mod 2^64
    ZK_HD static u64 mod(int i) {
        const u64 a = 0xffffffff00000001ull, b = 0x53bda402fffe5bfeull, c = 0x3339d80809a1d805ull,
                  d = 0x73eda753299d7d48ull;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : d;
    }
    ZK_HD static u64 one(int i) {  // 2^256 mod r
        const u64 a = 0x00000001fffffffeull, b = 0x5884b7fa00034802ull, c = 0x998c4fefecbc4ff5ull,
                  d = 0x1824b159acc5056full;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : d;
    }
    ZK_HD static u64 r2(int i) {  // 2^512 mod r
        const u64 a = 0xc999e990f3f29c6dull, b = 0x2b6cedcb87925c23ull, c = 0x05d314967254398full,
                  d = 0x0748d9d99f59ff11ull;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : d;
    }
};

// BLS12-381 base field p (381 bits).
struct FpP {
    static const int N = 6;
    static const u64 INV = 0x89f3fffcfffcfffdull;  // -p^-1 mod 2^64
    ZK_HD static u64 mod(int i) {
        const u64 a = 0xb9feffffffffaaabull, b = 0x1eabfffeb153ffffull, c = 0x6730d2a0f6b0f624ull,
                  d = 0x64774b84f38512bfull, e = 0x4b1ba7b6434bacd7ull, f = 0x1a0111ea397fe69aull;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : i == 3 ? d : i == 4 ? e : f;
    }
    ZK_HD static u64 one(int i) {  // 2^384 mod p
        const u64 a = 0x760900000002fffdull, b = 0xebf4000bc40c0002ull, c = 0x5f48985753c758baull,
                  d = 0x77ce585370525745ull, e = 0x5c071a97a256ec6dull, f = 0x15f65ec3fa80e493ull;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : i == 3 ? d : i == 4 ? e : f;
    }
    ZK_HD static u64 r2(int i) {  // 2^768 mod p
        const u64 a = 0xf4df1f341c341746ull, b = 0x0a76e6a609d104f1ull, c = 0x8de5476c4c95b6d5ull,
                  d = 0x67eb88a9939d83c0ull, e = 0x9a793e85b519952dull, f = 0x11988fe592cae3aaull;
        return i == 0 ? a : i == 1 ? b : i == 2 ? c : i == 3 ? d : i == 4 ? e : f;
    }
};

typedef Fe<FrP> Fr;
typedef Fe<FpP> Fp;

template <class P>
ZK_HD Fe<P> fe_zero() {
    Fe<P> z;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) z.v[i] = 0;
    return z;
}

template <class P>
ZK_HD Fe<P> fe_one() {
    Fe<P> z;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) z.v[i] = P::one(i);
    return z;
}

template <class P>
ZK_HD bool fe_is_zero(const Fe<P>& a) {
    u64 acc = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) acc |= a.v[i];
    return acc == 0;
}

template <class P>
ZK_HD bool fe_eq(const Fe<P>& a, const Fe<P>& b) {
    u64 acc = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) acc |= a.v[i] ^ b.v[i];
    return acc == 0;
}

// Whether the N-limb integer a is >= b.
template <class P>
ZK_HD bool limbs_geq(const Fe<P>& a, const Fe<P>& b) {
    u64 borrow = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) sbb(a.v[i], b.v[i], &borrow);
    return borrow == 0;
}

// t - p if t >= p else t (for t < 2^(64N)).
template <class P>
ZK_HD Fe<P> fe_reduce_once(const Fe<P>& t) {
    Fe<P> s;
    u64 borrow = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) s.v[i] = sbb(t.v[i], P::mod(i), &borrow);
    return borrow ? t : s;
}

template <class P>
ZK_HD Fe<P> fe_add(const Fe<P>& a, const Fe<P>& b) {
    Fe<P> s;
    u64 carry = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) s.v[i] = adc(a.v[i], b.v[i], &carry);
    return fe_reduce_once(s);  // a + b < 2p < 2^(64N): no carry out
}

template <class P>
ZK_HD Fe<P> fe_sub(const Fe<P>& a, const Fe<P>& b) {
    Fe<P> d;
    u64 borrow = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) d.v[i] = sbb(a.v[i], b.v[i], &borrow);
    if (borrow) {
        u64 carry = 0;
ZK_UNROLL
        for (int i = 0; i < P::N; ++i) d.v[i] = adc(d.v[i], P::mod(i), &carry);
    }
    return d;
}

template <class P>
ZK_HD Fe<P> fe_neg(const Fe<P>& a) {
    return fe_sub(fe_zero<P>(), a);
}

template <class P>
ZK_HD Fe<P> fe_double(const Fe<P>& a) {
    return fe_add(a, a);
}

// Montgomery product a * b / 2^(64N) mod p (CIOS, no-carry variant).  Not inlined on the device:
// ptxas time grows steeply with function size, and inlining every product into the curve formulas
// takes minutes to compile, against seconds for calls (which cost a few percent at run time).
template <class P>
ZK_HD_CALL Fe<P> fe_mul(const Fe<P>& a, const Fe<P>& b) {
    u64 t[P::N];
ZK_UNROLL
    for (int j = 0; j < P::N; ++j) t[j] = 0;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) {
        u64 A = 0, C = 0;
        t[0] = mac(a.v[0], b.v[i], t[0], 0, &A);
        u64 m = t[0] * P::INV;
        mac(m, P::mod(0), t[0], 0, &C);
ZK_UNROLL
        for (int j = 1; j < P::N; ++j) {
            t[j] = mac(a.v[j], b.v[i], t[j], A, &A);
            t[j - 1] = mac(m, P::mod(j), t[j], C, &C);
        }
        t[P::N - 1] = C + A;
    }
    Fe<P> r;
ZK_UNROLL
    for (int j = 0; j < P::N; ++j) r.v[j] = t[j];
    return fe_reduce_once(r);
}

template <class P>
ZK_HD Fe<P> fe_sqr(const Fe<P>& a) {
    return fe_mul(a, a);
}

// Montgomery form of a canonical integer (N limbs, < p).
template <class P>
ZK_HD Fe<P> fe_to_mont(const Fe<P>& a) {
    Fe<P> r2;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) r2.v[i] = P::r2(i);
    return fe_mul(a, r2);
}

// Canonical integer of a Montgomery-form element.
template <class P>
ZK_HD Fe<P> fe_from_mont(const Fe<P>& a) {
    Fe<P> raw_one = fe_zero<P>();
    raw_one.v[0] = 1;
    return fe_mul(a, raw_one);
}

// a^e for an exponent given as N little-endian limbs (left-to-right square and multiply).
template <class P>
ZK_HD_CALL Fe<P> fe_pow(Fe<P> a, const u64* e) {
    Fe<P> acc = fe_one<P>();
    for (int i = P::N - 1; i >= 0; --i) {
        for (int bit = 63; bit >= 0; --bit) {
            acc = fe_sqr(acc);
            if ((e[i] >> bit) & 1) acc = fe_mul(acc, a);
        }
    }
    return acc;
}

// 1/a by Fermat (a^(p-2)); 0 maps to 0.
template <class P>
ZK_HD_CALL Fe<P> fe_inv(const Fe<P>& a) {
    u64 e[P::N];
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) e[i] = P::mod(i);
    e[0] -= 2;  // p - 2 (the low limb of both moduli is odd and above 2: no borrow)
    return fe_pow(a, e);
}

template <class P>
ZK_HD Fe<P> fe_load(const u64* src) {
    Fe<P> a;
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) a.v[i] = src[i];
    return a;
}

template <class P>
ZK_HD void fe_store(u64* dst, const Fe<P>& a) {
ZK_UNROLL
    for (int i = 0; i < P::N; ++i) dst[i] = a.v[i];
}
