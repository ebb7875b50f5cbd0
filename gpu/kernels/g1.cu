// Kernels on arrays of G1 affine points (12 limbs: x then y, Fp Montgomery form, (0, 0) = infinity):
// conversion from/to the 48-byte compressed encoding of zk.group / arkworks (ZCash flags:
// 0x80 compressed, 0x40 infinity, 0x20 y is the larger of y and -y), point addition, and
// elementwise Fp arithmetic (for conversions and tests).
#include "g1.cuh"

#define FP_ADD 0
#define FP_SUB 1
#define FP_MUL 2
#define FP_INV 3
#define FP_TO_MONT 4
#define FP_FROM_MONT 5

#define G1_OK 0
#define G1_NOT_COMPRESSED 1
#define G1_BAD_INFINITY 2
#define G1_X_TOO_LARGE 3
#define G1_NOT_ON_CURVE 4

// Elementwise Fp: out[i] = a[i] op b[i] (unary ops ignore b).
ZK_KERNEL(fp_op, u64 op, const Fp* a, const Fp* b, Fp* out) {
    ZK_THREAD_LOOP(i) {
        Fp x = a[i];
        Fp r;
        if (op == FP_ADD) r = fe_add(x, b[i]);
        else if (op == FP_SUB) r = fe_sub(x, b[i]);
        else if (op == FP_MUL) r = fe_mul(x, b[i]);
        else if (op == FP_INV) r = fe_inv(x);
        else if (op == FP_TO_MONT) r = fe_to_mont(x);
        else r = fe_from_mont(x);
        out[i] = r;
    }
}

// out[i] = a[i] + b[i] (affine in, affine out).
ZK_KERNEL(g1_add, const Affine* a, const Affine* b, Affine* out) {
    ZK_THREAD_LOOP(i) {
        out[i] = jac_to_affine(jac_add(jac_from_affine(a[i]), jac_from_affine(b[i])));
    }
}

// Whether canonical y is the larger of y and p - y (the 0x20 flag).
ZK_HD bool fp_is_larger_root(const Fp& y_mont) {
    Fp y = fe_from_mont(y_mont);
    Fp ny = fe_from_mont(fe_neg(y_mont));
    return !fe_eq(y, ny) && limbs_geq(y, ny);
}

ZK_KERNEL(g1_to_compressed, const Affine* pts, u8* out) {
    ZK_THREAD_LOOP(i) {
        u8* o = out + 48 * i;
        Affine p = pts[i];
        if (affine_is_inf(p)) {
            o[0] = 0xc0;
            for (int k = 1; k < 48; ++k) o[k] = 0;
            continue;
        }
        Fp x = fe_from_mont(p.x);
        for (int k = 0; k < 48; ++k) o[k] = (u8)(x.v[5 - k / 8] >> (56 - 8 * (k % 8)));
        o[0] |= 0x80 | (fp_is_larger_root(p.y) ? 0x20 : 0);
    }
}

// Decompress; err[i] receives a G1_* code (points are not subgroup-checked: callers pass points
// that zk.group produced or validated).
ZK_KERNEL(g1_from_compressed, const u8* in, Affine* out, u8* err) {
    ZK_THREAD_LOOP(i) {
        const u8* b = in + 48 * i;
        u8 flags = b[0] & 0xe0;
        out[i] = affine_inf();
        err[i] = G1_OK;
        if (!(flags & 0x80)) {
            err[i] = G1_NOT_COMPRESSED;
            continue;
        }
        if (flags & 0x40) {
            u8 rest = (u8)(b[0] & 0x3f);
            for (int k = 1; k < 48; ++k) rest |= b[k];
            if (rest) err[i] = G1_BAD_INFINITY;
            continue;
        }
        Fp x;
        for (int l = 0; l < 6; ++l) {
            u64 limb = 0;
            for (int k = 0; k < 8; ++k) limb = (limb << 8) | (k == 0 && l == 5 ? (u8)(b[0] & 0x1f) : b[(5 - l) * 8 + k]);
            x.v[l] = limb;
        }
        Fp p;
        for (int l = 0; l < 6; ++l) p.v[l] = FpP::mod(l);
        if (limbs_geq(x, p)) {
            err[i] = G1_X_TOO_LARGE;
            continue;
        }
        x = fe_to_mont(x);
        Fp four = fe_zero<FpP>();
        four.v[0] = 4;
        Fp rhs = fe_add(fe_mul(fe_sqr(x), x), fe_to_mont(four));
        u64 e[6];  // (p + 1) / 4: a square root for p = 3 mod 4
        u64 carry = 1;
        for (int l = 0; l < 6; ++l) e[l] = adc(FpP::mod(l), 0, &carry);
        for (int l = 0; l < 6; ++l) e[l] = (e[l] >> 2) | (l < 5 ? e[l + 1] << 62 : 0);
        Fp y = fe_pow(rhs, e);
        if (!fe_eq(fe_sqr(y), rhs)) {
            err[i] = G1_NOT_ON_CURVE;
            continue;
        }
        if (fp_is_larger_root(y) != ((flags & 0x20) != 0)) y = fe_neg(y);
        out[i].x = x;
        out[i].y = y;
    }
}
