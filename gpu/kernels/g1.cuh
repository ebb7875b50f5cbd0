// BLS12-381 G1 (y^2 = x^3 + 4 over Fp): affine and Jacobian points.
//
// Affine points are stored as 12 limbs, x then y, each in Fp Montgomery form; (0, 0) (not on the
// curve) stands for the point at infinity, matching arkworks' to_xy_bytes_le encoding of identity.
// Jacobian (X, Y, Z) represents (X/Z^2, Y/Z^3); Z = 0 is infinity.  The addition formulas are the
// a = 0 ones of the Explicit-Formulas Database (add-2007-bl, madd-2007-bl, dbl-2009-l) with the
// exceptional cases (infinity, P + P, P + (-P)) handled explicitly, so every routine is complete.
#pragma once
#include "field.cuh"

struct Affine {
    Fp x, y;
};

struct Jac {
    Fp x, y, z;
};

ZK_HD bool affine_is_inf(const Affine& p) {
    return fe_is_zero(p.x) && fe_is_zero(p.y);
}

ZK_HD Affine affine_inf() {
    Affine p;
    p.x = fe_zero<FpP>();
    p.y = fe_zero<FpP>();
    return p;
}

ZK_HD Affine affine_neg(const Affine& p) {
    Affine q = p;
    q.y = fe_neg(p.y);  // -0 = 0 keeps infinity as (0, 0)
    return q;
}

ZK_HD Jac jac_inf() {
    Jac p;
    p.x = fe_one<FpP>();
    p.y = fe_one<FpP>();
    p.z = fe_zero<FpP>();
    return p;
}

ZK_HD bool jac_is_inf(const Jac& p) {
    return fe_is_zero(p.z);
}

ZK_HD Jac jac_from_affine(const Affine& p) {
    if (affine_is_inf(p)) return jac_inf();
    Jac q;
    q.x = p.x;
    q.y = p.y;
    q.z = fe_one<FpP>();
    return q;
}

// 2P (dbl-2009-l); infinity stays infinity.
ZK_HD_CALL Jac jac_double(const Jac& p) {
    Fp a = fe_sqr(p.x);
    Fp b = fe_sqr(p.y);
    Fp c = fe_sqr(b);
    Fp d = fe_sub(fe_sub(fe_sqr(fe_add(p.x, b)), a), c);
    d = fe_double(d);
    Fp e = fe_add(fe_double(a), a);
    Fp f = fe_sqr(e);
    Jac r;
    r.x = fe_sub(f, fe_double(d));
    Fp c8 = fe_double(fe_double(fe_double(c)));
    r.y = fe_sub(fe_mul(e, fe_sub(d, r.x)), c8);
    r.z = fe_double(fe_mul(p.y, p.z));
    return r;
}

// P + Q for Jacobian P and affine Q (madd-2007-bl).
ZK_HD_CALL Jac jac_add_affine(const Jac& p, const Affine& q) {
    if (affine_is_inf(q)) return p;
    if (jac_is_inf(p)) return jac_from_affine(q);
    Fp z1z1 = fe_sqr(p.z);
    Fp u2 = fe_mul(q.x, z1z1);
    Fp s2 = fe_mul(fe_mul(q.y, p.z), z1z1);
    Fp h = fe_sub(u2, p.x);
    Fp rr = fe_sub(s2, p.y);
    if (fe_is_zero(h)) return fe_is_zero(rr) ? jac_double(p) : jac_inf();
    rr = fe_double(rr);
    Fp hh = fe_sqr(h);
    Fp i = fe_double(fe_double(hh));
    Fp j = fe_mul(h, i);
    Fp v = fe_mul(p.x, i);
    Jac r;
    r.x = fe_sub(fe_sub(fe_sqr(rr), j), fe_double(v));
    r.y = fe_sub(fe_mul(rr, fe_sub(v, r.x)), fe_double(fe_mul(p.y, j)));
    r.z = fe_sub(fe_sub(fe_sqr(fe_add(p.z, h)), z1z1), hh);
    return r;
}

// P + Q for Jacobian P and Q (add-2007-bl).
ZK_HD_CALL Jac jac_add(const Jac& p, const Jac& q) {
    if (jac_is_inf(p)) return q;
    if (jac_is_inf(q)) return p;
    Fp z1z1 = fe_sqr(p.z);
    Fp z2z2 = fe_sqr(q.z);
    Fp u1 = fe_mul(p.x, z2z2);
    Fp u2 = fe_mul(q.x, z1z1);
    Fp s1 = fe_mul(fe_mul(p.y, q.z), z2z2);
    Fp s2 = fe_mul(fe_mul(q.y, p.z), z1z1);
    Fp h = fe_sub(u2, u1);
    Fp rr = fe_sub(s2, s1);
    if (fe_is_zero(h)) return fe_is_zero(rr) ? jac_double(p) : jac_inf();
    rr = fe_double(rr);
    Fp i = fe_sqr(fe_double(h));
    Fp j = fe_mul(h, i);
    Fp v = fe_mul(u1, i);
    Jac r;
    r.x = fe_sub(fe_sub(fe_sqr(rr), j), fe_double(v));
    r.y = fe_sub(fe_mul(rr, fe_sub(v, r.x)), fe_double(fe_mul(s1, j)));
    r.z = fe_mul(fe_sub(fe_sub(fe_sqr(fe_add(p.z, q.z)), z1z1), z2z2), h);
    return r;
}

// k P for a small non-negative integer k (left-to-right double and add).
ZK_HD_CALL Jac jac_mul_small(const Jac& p, u64 k) {
    Jac acc = jac_inf();
    int top = 63;
    while (top >= 0 && !((k >> top) & 1)) --top;
    for (int bit = top; bit >= 0; --bit) {
        acc = jac_double(acc);
        if ((k >> bit) & 1) acc = jac_add(acc, p);
    }
    return acc;
}

ZK_HD_CALL Affine jac_to_affine(const Jac& p) {
    if (jac_is_inf(p)) return affine_inf();
    Fp zi = fe_inv(p.z);
    Fp zi2 = fe_sqr(zi);
    Affine r;
    r.x = fe_mul(p.x, zi2);
    r.y = fe_mul(fe_mul(p.y, zi2), zi);
    return r;
}
