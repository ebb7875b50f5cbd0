// Portable building blocks shared by the CUDA kernels and the host library.
//
// Every arithmetic routine is a __host__ __device__ function (ZK_HD), and every kernel is written
// once with ZK_KERNEL / ZK_THREAD_LOOP.  Compiled by nvcc or NVRTC (__CUDACC__ defined) a kernel is
// an extern "C" __global__ function whose grid-stride loop visits thread ids 0..n_threads-1;
// compiled as plain C++ (g++ -x c++) it is an extern "C" host function whose (OpenMP) loop visits
// the same ids.  The host build therefore runs the very source the GPU runs, which is how the
// arithmetic and the MSM schedule are tested on machines without a GPU.
//
// Only 64x64->128 multiplication differs between the two: __umul64hi on the device,
// unsigned __int128 on the host.  No standard headers are included (NVRTC has none).
#pragma once

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#if defined(__CUDACC__)
#define ZK_HD __host__ __device__ __forceinline__
#define ZK_UNROLL _Pragma("unroll")
#define ZK_HD_CALL __host__ __device__ __noinline__
#define ZK_BLOCK 128
#define ZK_KERNEL(name, ...) \
    extern "C" __global__ void __launch_bounds__(ZK_BLOCK) name(u64 n_threads, __VA_ARGS__)
#define ZK_THREAD_LOOP(tid)                                                   \
    for (u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x; tid < n_threads; \
         tid += (u64)gridDim.x * blockDim.x)
#else
#define ZK_HD inline
#define ZK_UNROLL _Pragma("GCC unroll 8")
#define ZK_HD_CALL inline
#define ZK_KERNEL(name, ...) extern "C" void name(u64 n_threads, __VA_ARGS__)
#define ZK_THREAD_LOOP(tid) \
    _Pragma("omp parallel for schedule(guided)") for (u64 tid = 0; tid < n_threads; ++tid)
#endif

// High 64 bits of a*b.
ZK_HD u64 mul_hi(u64 a, u64 b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return (u64)(((unsigned __int128)a * b) >> 64);
#endif
}

// Low word of a*b + c + d (< 2^128, never overflows); the high word goes to *hi.
ZK_HD u64 mac(u64 a, u64 b, u64 c, u64 d, u64* hi) {
    u64 lo = a * b;
    u64 h = mul_hi(a, b);
    lo += c;
    h += lo < c;
    lo += d;
    h += lo < d;
    *hi = h;
    return lo;
}

// a + b + *carry mod 2^64; carry out (0 or 1) into *carry.
ZK_HD u64 adc(u64 a, u64 b, u64* carry) {
    u64 s = a + b;
    u64 c = s < a;
    u64 t = s + *carry;
    c |= t < s;
    *carry = c;
    return t;
}

// a - b - *borrow mod 2^64; borrow out (0 or 1) into *borrow.
ZK_HD u64 sbb(u64 a, u64 b, u64* borrow) {
    u64 d = a - b;
    u64 br = a < b;
    u64 t = d - *borrow;
    br |= d < *borrow;
    *borrow = br;
    return t;
}

// First index s in [0, n) with off[s] <= t < off[s + 1], for a non-decreasing off[0..n] with
// off[0] <= t < off[n] (binary search; empty ranges are skipped).
ZK_HD u64 find_range(const u64* off, u64 n, u64 t) {
    u64 lo = 0, hi = n;  // invariant: off[lo] <= t < off[hi]
    while (hi - lo > 1) {
        u64 mid = (lo + hi) / 2;
        if (off[mid] <= t) lo = mid; else hi = mid;
    }
    return lo;
}
