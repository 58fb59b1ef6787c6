/* Causal Music Transformer relative attention on the CPU, one (batch, head) pair at a time:
 * training forward and backward, and (at the end of the file) one decoding step over a cache.
 *
 * Why C: composed from tensor ops, each (B, H, T, T) step (scores, mask, softmax, dropout, the
 * softmax gradient, the skew) is a separate pass over memory, and on a CPU those passes cost more
 * than the matmuls. Here one (batch, head) pair's whole problem -- at T = 256 its score matrix is
 * 256 KB -- stays in the core's cache while every step runs over it. The relative scores
 * q_i . E_x are one more aligned GEMM tile per block of queries; the skew is the per-row offset
 * at which each query reads them. setup.py compiles this file into a plain shared library when
 * midiforge is installed (flags and their measured cost: docs/benchmarks.md); native.py only
 * loads it. Without it, the tensor-op reference in relative_attention.py runs instead, and the
 * tests check one against the other (tests/models/test_relative_attention*.py).
 *
 * Layout: q, k, v, y, dy, dq, dk, dv are (B, H, T, D) views with unit stride along D and any
 * other strides (the trainer passes views into the fused qkv projection, so nothing is copied).
 * e is (H, Tk, D) with row r the distance Tk-1-r, as RelativeEmbedding returns it. Query i is
 * position Tk-Tq+i and sees keys 0..Tk-Tq+i. The forward keeps only each query row's score max
 * and 1/sum (the backward recomputes the weights from them); dropout masks are not stored
 * either but redrawn from a counter-based hash of (seed, index).
 *
 * Vectors are GCC/Clang vector extensions exactly as wide as the target's registers: W = 16 floats
 * with AVX-512, 8 with AVX/AVX2, 4 otherwise (SSE2, NEON). A vector type wider than the
 * registers has no machine mode, so GCC keeps such values on the stack: 16-float vectors on an
 * AVX2 machine made this kernel 12x slower than 8-float ones (docs/benchmarks.md).
 */
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define W 16    /* floats per vector */
#define NREG 32 /* vector registers */
#define LANES {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
#elif defined(__AVX__)
#define W 8
#define NREG 16
#define LANES {0, 1, 2, 3, 4, 5, 6, 7}
#else
#define W 4
#define NREG 16 /* SSE2; NEON has 32, this is the safe side */
#define LANES {0, 1, 2, 3}
#endif
#ifndef R /* query rows per micro-kernel: R x 2 vectors of accumulators in a GEMM tile */
#if W == 16
#define R 4
#else
#define R 6 /* 12 of the 16 registers: 1.2x faster than 4 rows on AVX2 (latency hidden) */
#endif
#endif
#define MAX_NV (128 / W) /* head size up to 128 */
/* Loops that accumulate whole head rows keep only part of a row in registers at a time, nc
 * vectors of it: accumulators that do not fit the registers are spilled to the stack on every
 * multiply-add. Over R query rows, plus a row of loads: */
#define NC_ROWS ((NREG - 2) / (R + 1)) /* AVX2 2, AVX-512 6 */
#define NC_SWEEP (NREG / 8)            /* the column sweeps: AVX2 2, AVX-512 4 */
#define CB_MAX (W < 8 ? 4 : 6)         /* keys per column sweep; at most W + 1 (zero margins) */

typedef float vf __attribute__((vector_size(4 * W)));
typedef float vfu __attribute__((vector_size(4 * W), aligned(4)));
typedef int32_t vi __attribute__((vector_size(4 * W)));
typedef uint32_t vu __attribute__((vector_size(4 * W)));

#define INLINE static inline __attribute__((always_inline))

static const vi LANE = LANES;

INLINE vf ld(const float *p) { return *(const vfu *)p; }
INLINE void st(float *p, vf x) { *(vfu *)p = x; }
INLINE vf splat(float x) { return (vf){0} + x; }
INLINE vf sel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
INLINE int imin(int a, int b) { return a < b ? a : b; }
INLINE int imax(int a, int b) { return a > b ? a : b; }

INLINE float hmax(vf x) {
  float m = x[0];
  for (int l = 1; l < W; l++) m = x[l] > m ? x[l] : m;
  return m;
}

INLINE float hsum(vf x) {
  float s = 0.0f;
  for (int l = 0; l < W; l++) s += x[l];
  return s;
}

/* e^x for x <= 0 (Cephes expf: range reduction by ln 2, degree-5 polynomial; ~1 ulp). Inputs
 * below -87 give e^-87 instead of underflowing; softmax weights that small do not matter. */
INLINE vf vexp(vf x) {
  x = sel(x < -87.0f, splat(-87.0f), x);
  vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
  vf f = x - n * 0.693359375f + n * 2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * f * f + f + 1.0f;
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)bits;
}

/* Dropout keep mask for W consecutive weights starting at flat index `base` of the (B, H, Tq,
 * Tk) weight tensor: a murmur-style integer hash of (index, seed), kept where its top 24 bits
 * reach `thr` = p * 2^24. Forward and backward draw the same mask from the same seed. */
INLINE vi keep_mask(uint32_t s0, uint32_t s1, uint32_t base, uint32_t thr) {
  vu x = ((vu)LANE + base) ^ s0;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x += s1;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return (vi)((x >> 8) >= thr);
}

typedef struct {
  float *ptr;
  int64_t sb, sh, st; /* strides in floats; D is unit-stride */
} View;

typedef struct {
  int64_t B, H, Tq, Tk, D, nthreads;
  View q, k, v, y, dy, dq, dk, dv;
  const float *e; /* (H, Tk, D), head stride e_sh */
  int64_t e_sh;
  float *stats; /* per query row: score max and 1/sum(exp) (B, H, Tq, 2); NULL = no backward */
  float *de; /* (B, H, Tk, D): per-batch relative-table gradient, summed by the caller */
  float scale, drop;
  uint32_t s0, s1;
} Job;

typedef struct {
  float *qs, *ks, *vs, *es, *kt, *et, *vt, *dys, *s, *qe, *ds, *pd;
} Scratch;

INLINE int64_t round16(int64_t n) { return (n + W - 1) / W * W; }

/* The largest of nv, 6, 4, 3, 2, 1 that divides nv and is at most `most`: row chunks of equal
 * size, a compile-time constant wherever nv is, so every loop over a chunk unrolls into
 * registers. */
#define DIVIDES(c) (most >= (c) && nv % (c) == 0)
INLINE int chunk(int nv, int most) {
  return nv <= most     ? nv
         : DIVIDES(6) ? 6
         : DIVIDES(4) ? 4
         : DIVIDES(3) ? 3
         : DIVIDES(2) ? 2
                      : 1;
}
#undef DIVIDES

/* A GEMM tile: out[r][c] = sum_d a[row_r, d] * bt[d, j + W c ..] for R rows and 2W columns.
 * Two column vectors per row share each broadcast of a[row_r, d], and all loads are aligned. */
INLINE void tile(const float *a, int64_t Dp, const int64_t row[R], const float *bt, int64_t lb,
                 int64_t j, int64_t D, vf out[R][2]) {
  for (int r = 0; r < R; r++) out[r][0] = out[r][1] = splat(0.0f);
  for (int64_t d = 0; d < D; d++) {
    const vf b0 = ld(bt + d * lb + j), b1 = ld(bt + d * lb + j + W);
    for (int r = 0; r < R; r++) {
      const float x = a[row[r] * Dp + d];
      out[r][0] += x * b0;
      out[r][1] += x * b1;
    }
  }
}

/* The relative scores q_i . E_x of a block of R query rows, for every table row x the block
 * needs, into qe (R rows of stride lq, column x - xs); returns xs. Row i reads its keys' scores
 * at qe[r][off_r - xs + j] -- the skew is that per-row offset, applied once per output vector
 * rather than as a misaligned load inside the multiply-add loop. `keys` = W x blocks read. */
INLINE int64_t rel_scores(const float *qs, int64_t Dp, const int64_t row[R], const int64_t off[R],
                          const float *et, int64_t le, int64_t D, int64_t keys, float *qe,
                          int64_t lq) {
  const int64_t xs = off[R - 1] / W * W, xe = off[0] + keys;
  for (int64_t x = xs; x < xe; x += 2 * W) {
    vf acc[R][2];
    tile(qs, Dp, row, et, le, x, D, acc);
    for (int r = 0; r < R; r++) {
      st(qe + r * lq + x - xs, acc[r][0]);
      st(qe + r * lq + x - xs + W, acc[r][1]);
    }
  }
  return xs;
}

/* ---------------------------------------------------------------------------------------- */

INLINE void forward_item(const Job *J, Scratch *S, int64_t w, const int nv, int same_table) {
  const int64_t b = w / J->H, h = w % J->H, Tq = J->Tq, Tk = J->Tk, D = J->D, Dp = nv * W;
  const int64_t Tk16 = round16(Tk), LK = Tk16 + 2 * W, LE = Tk16 + 4 * W, shift = Tk - Tq;
  const int64_t LQ = Tk16 + 4 * W;
  const float *q = J->q.ptr + b * J->q.sb + h * J->q.sh;
  const float *k = J->k.ptr + b * J->k.sb + h * J->k.sh;
  const float *v = J->v.ptr + b * J->v.sb + h * J->v.sh;
  const float *e = J->e + h * J->e_sh;
  float *y = J->y.ptr + b * J->y.sb + h * J->y.sh;
  const float ks = J->drop > 0.0f ? 1.0f / (1.0f - J->drop) : 1.0f;
  const uint32_t thr = (uint32_t)(J->drop * 16777216.0f);
  float *qs = S->qs, *kt = S->kt, *et = S->et, *vs = S->vs, *sr = S->s, *qe = S->qe;

  for (int64_t i = 0; i < Tq; i++)
    for (int64_t d = 0; d < D; d++) qs[i * Dp + d] = q[i * J->q.st + d] * J->scale;
  for (int64_t j = 0; j < Tk; j++)
    for (int64_t d = 0; d < D; d++) {
      kt[d * LK + j] = k[j * J->k.st + d];
      vs[j * Dp + d] = v[j * J->v.st + d];
    }
  for (int64_t j = 0; !same_table && j < Tk; j++)
    for (int64_t d = 0; d < D; d++) et[d * LE + j] = e[j * D + d];

  for (int64_t i0 = 0; i0 < Tq; i0 += R) {
    const int rn = (int)imin(R, Tq - i0);
    const int64_t pmax = shift + i0 + rn - 1; /* last key any row of the block sees */
    const int64_t nb = pmax / W + 1;
    int64_t row[R], off[R]; /* rows past Tq repeat the last; off: E row of key 0, Tq-1-i */
    for (int r = 0; r < R; r++) {
      row[r] = imin(i0 + r, Tq - 1);
      off[r] = Tq - 1 - row[r];
    }
    /* scores s_ij = q_i . k_j + q_i . E[dist], 32 keys x R queries at a time */
    const int64_t xs = rel_scores(qs, Dp, row, off, et, LE, D, nb * W, qe, LQ);
    for (int64_t jb = 0; jb < nb; jb += 2) {
      vf acc[R][2];
      tile(qs, Dp, row, kt, LK, jb * W, D, acc);
      for (int r = 0; r < R; r++) {
        st(sr + r * LK + jb * W, acc[r][0]);
        st(sr + r * LK + jb * W + W, acc[r][1]);
      }
    }
    /* softmax over keys 0..p_i, then dropout; rows of the block past Tq become zeros */
    float norm[R];
    for (int r = 0; r < R; r++) {
      float *s = sr + r * LK;
      if (r >= rn) {
        memset(s, 0, nb * W * sizeof(float));
        continue;
      }
      const int64_t i = i0 + r, pi = shift + i;
      const float *rel = qe + r * LQ + off[r] - xs;
      vf m = splat(-3.0e38f);
      for (int64_t jb = 0; jb < nb; jb++) {
        const vi valid = (LANE + (int32_t)(jb * W)) <= (int32_t)pi;
        const vf x = sel(valid, ld(s + jb * W) + ld(rel + jb * W), splat(-3.0e38f));
        st(s + jb * W, x);
        m = sel(x > m, x, m);
      }
      const float mx = hmax(m);
      /* unnormalised weights, dropout applied; y's row is scaled by 1/sum once at the end */
      const uint32_t base = (uint32_t)((w * Tq + i) * Tk);
      vf sum = splat(0.0f);
      for (int64_t jb = 0; jb < nb; jb++) {
        const vi valid = (LANE + (int32_t)(jb * W)) <= (int32_t)pi;
        vf x = sel(valid, vexp(ld(s + jb * W) - mx), splat(0.0f));
        sum += x;
        if (thr) x = sel(keep_mask(J->s0, J->s1, base + (uint32_t)(jb * W), thr), x, splat(0.0f));
        st(s + jb * W, x);
      }
      norm[r] = 1.0f / hsum(sum);
      if (J->stats) {
        J->stats[2 * (w * Tq + i)] = mx;
        J->stats[2 * (w * Tq + i) + 1] = norm[r];
      }
      norm[r] *= ks;
    }
    /* y_i = sum_j w_ij v_j, nc vectors of the row at a time: R rows share each v_j load */
    const int nc = chunk(nv, NC_ROWS);
    float out[R][MAX_NV * W];
    for (int c0 = 0; c0 < nv; c0 += nc) {
      vf acc[R][MAX_NV];
      for (int r = 0; r < R; r++)
        for (int c = 0; c < nc; c++) acc[r][c] = splat(0.0f);
      for (int64_t j = 0; j <= pmax; j++) {
        vf vv[MAX_NV];
        for (int c = 0; c < nc; c++) vv[c] = ld(vs + j * Dp + (c0 + c) * W);
        for (int r = 0; r < R; r++) {
          const float wgt = sr[r * LK + j];
          for (int c = 0; c < nc; c++) acc[r][c] += wgt * vv[c];
        }
      }
      for (int r = 0; r < rn; r++)
        for (int c = 0; c < nc; c++) st(out[r] + (c0 + c) * W, acc[r][c] * norm[r]);
    }
    for (int r = 0; r < rn; r++) memcpy(y + (i0 + r) * J->y.st, out[r], D * sizeof(float));
  }
}

/* ---------------------------------------------------------------------------------------- */

/* out_x = sum_i g_i[x] a_i for every x < Tk, the backward's three reductions over query rows:
 * g_i is row i of dS (dK), of the dropped weights (dV), or its diagonal (diag: dE, where
 * column x of row i is key x - (Tq - 1) + i). Blocks of CB columns by nc vectors of the row,
 * so each load of a_i serves CB columns; rows that see none of a block's keys are skipped. */
INLINE void sweep(const float *g, int64_t LS, const float *a, int64_t Dp, float *out, int64_t ost,
                  int64_t Tq, int64_t Tk, int64_t shift, int64_t D, const int nv, const int diag) {
  const int nc = chunk(nv, NC_SWEEP), CB = imin(CB_MAX, (NREG - 2 - nc) / nc);
  for (int64_t x0 = 0; x0 < Tk; x0 += CB) {
    const int64_t first = diag ? imax(0, Tq - x0 - CB) : imax(0, x0 - shift);
    float o[CB_MAX][MAX_NV * W];
    for (int c0 = 0; c0 < nv; c0 += nc) {
      vf acc[CB_MAX][MAX_NV];
      for (int cb = 0; cb < CB; cb++)
        for (int c = 0; c < nc; c++) acc[cb][c] = splat(0.0f);
      for (int64_t i = first; i < Tq; i++) {
        const float *gi = g + i * LS + (diag ? x0 - (Tq - 1) + i : x0); /* may start -CB+1 */
        vf av[MAX_NV];
        for (int c = 0; c < nc; c++) av[c] = ld(a + i * Dp + (c0 + c) * W);
        for (int cb = 0; cb < CB; cb++) {
          const float x = gi[cb];
          for (int c = 0; c < nc; c++) acc[cb][c] += x * av[c];
        }
      }
      for (int cb = 0; cb < CB; cb++)
        for (int c = 0; c < nc; c++) st(o[cb] + (c0 + c) * W, acc[cb][c]);
    }
    for (int cb = 0; cb < CB && x0 + cb < Tk; cb++)
      memcpy(out + (x0 + cb) * ost, o[cb], D * sizeof(float));
  }
}

INLINE void backward_item(const Job *J, Scratch *S, int64_t w, const int nv, int same_table) {
  const int64_t b = w / J->H, h = w % J->H, Tq = J->Tq, Tk = J->Tk, D = J->D, Dp = nv * W;
  const int64_t Tk16 = round16(Tk), LK = Tk16 + 2 * W, LS = Tk16 + 2 * W, shift = Tk - Tq;
  const float *q = J->q.ptr + b * J->q.sb + h * J->q.sh;
  const float *k = J->k.ptr + b * J->k.sb + h * J->k.sh;
  const float *v = J->v.ptr + b * J->v.sb + h * J->v.sh;
  const float *yo = J->y.ptr + b * J->y.sb + h * J->y.sh;
  const float *dy = J->dy.ptr + b * J->dy.sb + h * J->dy.sh;
  const float *e = J->e + h * J->e_sh;
  float *dq = J->dq.ptr + b * J->dq.sb + h * J->dq.sh;
  float *dk = J->dk.ptr + b * J->dk.sb + h * J->dk.sh;
  float *dv = J->dv.ptr + b * J->dv.sb + h * J->dv.sh;
  float *de = J->de + w * Tk * D;
  const float ks = J->drop > 0.0f ? 1.0f / (1.0f - J->drop) : 1.0f;
  const uint32_t thr = (uint32_t)(J->drop * 16777216.0f);
  const int64_t LE = Tk16 + 4 * W, LQ = Tk16 + 4 * W;
  float *qs = S->qs, *ks_ = S->ks, *es = S->es, *vt = S->vt, *dys = S->dys, *kt = S->kt;
  float *et = S->et, *qe = S->qe;
  float *dsm = S->ds + W, *pdm = S->pd + W; /* W zero columns to the left of every row */

  for (int64_t i = 0; i < Tq; i++)
    for (int64_t d = 0; d < D; d++) {
      qs[i * Dp + d] = q[i * J->q.st + d] * J->scale;
      dys[i * Dp + d] = dy[i * J->dy.st + d];
    }
  for (int64_t j = 0; j < Tk; j++)
    for (int64_t d = 0; d < D; d++) {
      ks_[j * Dp + d] = kt[d * LK + j] = k[j * J->k.st + d];
      vt[d * LK + j] = v[j * J->v.st + d];
    }
  for (int64_t j = 0; !same_table && j < Tk; j++)
    for (int64_t d = 0; d < D; d++) es[j * Dp + d] = et[d * LE + j] = e[j * D + d];

  /* The weights are recomputed from the scores and the forward's row statistics rather than
   * stored: a stored (T, T) matrix per head would be written, paged in and read back once each,
   * which costs more than the multiply-adds it saves. Then dS = P * (dP - rowsum), with
   * dP = dy v^T through the dropout mask and rowsum_i = dy_i . y_i. */
  for (int64_t i0 = 0; i0 < Tq; i0 += R) {
    const int rn = (int)imin(R, Tq - i0);
    const int64_t pmax = shift + i0 + rn - 1;
    const int64_t nb = pmax / W + 1;
    float rowsum[R], mx[R], inv[R];
    int64_t row[R], off[R];
    for (int r = 0; r < R; r++) {
      row[r] = imin(i0 + r, Tq - 1);
      off[r] = Tq - 1 - row[r];
      float t = 0.0f;
      for (int64_t d = 0; d < D; d++) t += dy[row[r] * J->dy.st + d] * yo[row[r] * J->y.st + d];
      rowsum[r] = t;
      mx[r] = J->stats[2 * (w * Tq + row[r])];
      inv[r] = J->stats[2 * (w * Tq + row[r]) + 1];
    }
    const int64_t xs = rel_scores(qs, Dp, row, off, et, LE, D, nb * W, qe, LQ);
    for (int64_t jp = 0; jp < nb; jp += 2) {
      vf sa[R][2], da[R][2];
      tile(qs, Dp, row, kt, LK, jp * W, D, sa);
      tile(dys, Dp, row, vt, LK, jp * W, D, da);
      for (int64_t jb = jp; jb < imin(jp + 2, nb); jb++)
      for (int r = 0; r < rn; r++) {
        const int64_t i = i0 + r, j = jb * W;
        const vi valid = (LANE + (int32_t)j) <= (int32_t)(shift + i);
        const vf score = sa[r][jb - jp] + ld(qe + r * LQ + off[r] - xs + j);
        const vf p = sel(valid, vexp(score - mx[r]) * inv[r], splat(0.0f));
        vf dp = da[r][jb - jp], pd = p;
        if (thr) {
          const vi keep = keep_mask(J->s0, J->s1, (uint32_t)((w * Tq + i) * Tk + j), thr);
          dp = sel(keep, dp * ks, splat(0.0f));
          pd = sel(keep, p * ks, splat(0.0f));
        }
        st(dsm + i * LS + j, p * (dp - rowsum[r]));
        st(pdm + i * LS + j, pd);
      }
    }
    for (int r = 0; r < rn; r++) { /* zeros after the row: later sweeps read a few past p_i */
      st(dsm + (i0 + r) * LS + nb * W, splat(0.0f));
      st(pdm + (i0 + r) * LS + nb * W, splat(0.0f));
    }
  }

  /* dq_i = scale * sum_j dS_ij (k_j + E[dist]), nc vectors of the row at a time */
  const int nc = chunk(nv, NC_ROWS);
  for (int64_t i0 = 0; i0 < Tq; i0 += R) {
    const int rn = (int)imin(R, Tq - i0);
    const int64_t pmax = shift + i0 + rn - 1;
    int64_t row[R];
    for (int r = 0; r < R; r++) row[r] = imin(i0 + r, Tq - 1);
    float out[R][MAX_NV * W];
    for (int c0 = 0; c0 < nv; c0 += nc) {
      vf acc[R][MAX_NV];
      for (int r = 0; r < R; r++)
        for (int c = 0; c < nc; c++) acc[r][c] = splat(0.0f);
      for (int64_t j = 0; j <= pmax; j++) {
        vf kv[MAX_NV];
        for (int c = 0; c < nc; c++) kv[c] = ld(ks_ + j * Dp + (c0 + c) * W);
        for (int r = 0; r < R; r++) {
          const float g = dsm[row[r] * LS + j];
          const float *er = es + (Tq - 1 - row[r] + j) * Dp + c0 * W;
          for (int c = 0; c < nc; c++) acc[r][c] += g * (kv[c] + ld(er + c * W));
        }
      }
      for (int r = 0; r < rn; r++)
        for (int c = 0; c < nc; c++) st(out[r] + (c0 + c) * W, acc[r][c] * J->scale);
    }
    for (int r = 0; r < rn; r++) memcpy(dq + (i0 + r) * J->dq.st, out[r], D * sizeof(float));
  }

  /* dk_j = sum_i dS_ij q_i (q pre-scaled), dv_j = sum_i P'_ij dy_i: column sweeps */
  sweep(dsm, LS, qs, Dp, dk, J->dk.st, Tq, Tk, shift, D, nv, 0);
  sweep(pdm, LS, dys, Dp, dv, J->dv.st, Tq, Tk, shift, D, nv, 0);
  /* dE row x (distance Tk-1-x) = sum over pairs at that distance: a diagonal sweep of dS */
  sweep(dsm, LS, qs, Dp, de, D, Tq, Tk, shift, D, nv, 1);
}

/* ---------------------------------------------------------------------------------------- */

static void *aligned_zeros(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n * sizeof(float) + 64)) return NULL;
  memset(p, 0, n * sizeof(float) + 64);
  return p;
}

/* Items run head by head (u = h * B + b, item w = b * H + h), so a thread's consecutive items
 * share the relative table and copy it into the scratch once. Each item function is inlined
 * once per head size in vectors (nv) it is specialised for, its loops over nv then unrolled,
 * and once with nv a run-time value for the other sizes. */
#define ITEM_LOOP(fn, nvc)                                                                    \
  for (int64_t u = first; u < last; u++)                                                      \
    fn(J, &S, (u % J->B) * J->H + u / J->B, nvc, u > first && u % J->B != 0);
#define ITEMS(fn, nvc)  \
  case nvc:             \
    ITEM_LOOP(fn, nvc); \
    break;
#define ALL_ITEMS(fn)       \
  switch (nv) {             \
    SPECIALISED(fn)         \
  default:                  \
    ITEM_LOOP(fn, (int)nv); \
  }
#ifdef NO_SPECIALISED /* for measuring what the copies buy (bench/kernel_flags.py) */
#define SPECIALISED(fn)
#elif W == 16 /* copies for head sizes of 8 (W = 8 only), 16, 32, 64 and 128 floats */
#define SPECIALISED(fn) ITEMS(fn, 1) ITEMS(fn, 2) ITEMS(fn, 4) ITEMS(fn, 8)
#elif W == 8
#define SPECIALISED(fn) ITEMS(fn, 1) ITEMS(fn, 2) ITEMS(fn, 4) ITEMS(fn, 8) ITEMS(fn, 16)
#else
#define SPECIALISED(fn) ITEMS(fn, 2) ITEMS(fn, 4) ITEMS(fn, 8) ITEMS(fn, 16) ITEMS(fn, 32)
#endif

/* One thread's share: (batch, head) items [first, last). Returns 0, or -1 without memory. */
static int run_items(const Job *J, int64_t first, int64_t last, int backward) {
  const int64_t Tq = J->Tq, Tk = J->Tk, Tk16 = round16(Tk), nv = (J->D + W - 1) / W, Dp = nv * W;
  const int64_t rows = Tk + R + W; /* zero rows after the keys: reads run a few past the end */
  Scratch S = {0};
  /* both directions: queries, transposed keys and table, relative scores */
  S.qs = aligned_zeros(Tq * Dp);
  S.kt = aligned_zeros(Dp * (Tk16 + 2 * W));
  S.et = aligned_zeros(Dp * (Tk16 + 4 * W));
  S.qe = aligned_zeros(R * (Tk16 + 4 * W));
  int ok = S.qs && S.kt && S.et && S.qe;
  if (!backward) { /* values as rows, a block's score rows */
    S.vs = aligned_zeros(rows * Dp);
    S.s = aligned_zeros(R * (Tk16 + 2 * W));
    ok = ok && S.vs && S.s;
  } else { /* keys and table as rows, transposed values, dy, dS and the dropped weights */
    S.ks = aligned_zeros(rows * Dp);
    S.es = aligned_zeros(rows * Dp);
    S.vt = aligned_zeros(Dp * (Tk16 + 2 * W));
    S.dys = aligned_zeros(Tq * Dp);
    S.ds = aligned_zeros((Tq + 1) * (Tk16 + 2 * W));
    S.pd = aligned_zeros((Tq + 1) * (Tk16 + 2 * W));
    ok = ok && S.ks && S.es && S.vt && S.dys && S.ds && S.pd;
  }
  if (ok && !backward) {
    ALL_ITEMS(forward_item)
  } else if (ok) {
    ALL_ITEMS(backward_item)
  }
  free(S.qs); free(S.ks); free(S.vs); free(S.es); free(S.dys); free(S.kt); free(S.vt);
  free(S.et); free(S.s); free(S.qe); free(S.ds); free(S.pd);
  return ok ? 0 : -1;
}

/* Split the B*H items over nthreads threads. With OpenMP (the build links libgomp, which
 * resolves to the copy torch already loaded) they are torch's own pool: its threads do this
 * work instead of spinning idle beside separate ones. Without it, pthreads. Returns 0, or -1
 * when the head size is unsupported or memory ran out. */
#ifndef _OPENMP
typedef struct {
  const Job *job;
  int64_t first, last;
  int backward, status;
} Task;

static void *run_task(void *arg) {
  Task *t = (Task *)arg;
  t->status = run_items(t->job, t->first, t->last, t->backward);
  return NULL;
}
#endif

static int run(const Job *job, int backward) {
  if (job->D < 1 || job->D > MAX_NV * W || job->Tq < 1 || job->Tq > job->Tk) return -1;
  const int64_t items = job->B * job->H;
  int64_t n = job->nthreads < 1 ? 1 : job->nthreads;
  if (n > items) n = items;
  if (n > 256) n = 256;
  int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads((int)n) reduction(| : failed)
  {
    const int64_t t = omp_get_thread_num(), m = omp_get_num_threads();
    failed |= run_items(job, items * t / m, items * (t + 1) / m, backward) != 0;
  }
#else
  Task tasks[256];
  pthread_t threads[256];
  int started[256] = {0};
  for (int64_t t = 0; t < n; t++) tasks[t] = (Task){job, items * t / n, items * (t + 1) / n, backward, 0};
  for (int64_t t = 1; t < n; t++)
    started[t] = pthread_create(&threads[t], NULL, run_task, &tasks[t]) == 0;
  for (int64_t t = 1; t < n; t++)
    if (!started[t]) run_task(&tasks[t]);
  run_task(&tasks[0]);
  for (int64_t t = 0; t < n; t++) {
    if (t > 0 && started[t]) pthread_join(threads[t], NULL);
    failed |= tasks[t].status != 0;
  }
#endif
  return failed ? -1 : 0;
}

int mf_relattn_forward(const Job *job) { return run(job, 0); }
int mf_relattn_backward(const Job *job) { return run(job, 1); }
int mf_relattn_abi(void) { return (int)sizeof(Job); }

/* Whether this CPU has the instructions the build was allowed to use (-march=native makes a
 * library for the machine that built it; a wheel copied to an older CPU would die of SIGILL).
 * Compiled for the baseline ISA itself, so calling it is safe anywhere; 1 = yes. */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("arch=x86-64"))) int mf_relattn_cpu_ok(void) {
  __builtin_cpu_init();
  int ok = 1;
#define NEED(name) ok &= __builtin_cpu_supports(name) != 0
#ifdef __AVX__
  NEED("avx");
#endif
#ifdef __AVX2__
  NEED("avx2");
#endif
#ifdef __FMA__
  NEED("fma");
#endif
#ifdef __F16C__
  NEED("f16c");
#endif
#ifdef __BMI2__
  NEED("bmi2");
#endif
#ifdef __AVX512F__
  NEED("avx512f");
#endif
#ifdef __AVX512BW__
  NEED("avx512bw");
#endif
#ifdef __AVX512VL__
  NEED("avx512vl");
#endif
#undef NEED
  return ok;
}
#else
int mf_relattn_cpu_ok(void) { return 1; }
#endif

/* The dropout mask the kernels draw, written out as bytes (B, H, Tq, Tk): for tests. */
void mf_relattn_keep_mask(int64_t B, int64_t H, int64_t Tq, int64_t Tk, float drop, uint32_t s0,
                          uint32_t s1, uint8_t *out) {
  const uint32_t thr = (uint32_t)(drop * 16777216.0f);
  for (int64_t row = 0; row < B * H * Tq; row++)
    for (int64_t j = 0; j < Tk; j += W) {
      const vi keep = keep_mask(s0, s1, (uint32_t)(row * Tk + j), thr);
      for (int l = 0; l < W && j + l < Tk; l++) out[row * Tk + j + l] = keep[l] != 0;
    }
}

/* ---------------------------------------------------------------------------------------- *
 * One decoding step: a single new query per (batch, head) attends to every cached key.
 *
 * Why a kernel of its own: at batch 1 a step is a dozen tiny tensor ops per layer, each paying
 * a fixed dispatch cost, and its cost per cached position is reading K, V and the relative
 * table once each. Here one call per layer writes the new token's key and value into the cache
 * and does the attention for every head, reading each cached row once; a row's score is
 * q . (k_j + e_j), the two added before the product.
 *
 * qkv is the fused projection of the new tokens, (B, 3*H*D) with batch stride q_sb: query, key
 * and value thirds. k and v are the (B, H, capacity, D) cache buffers with batch, head and row
 * strides kv_sb, kv_sh, kv_st (D unit stride); rows 0..length-1 are filled, and the new key and
 * value go to row `length`, so the query sees Tk = length + 1 keys. e is the whole
 * (H, max_rel, D) table, row r the distance max_rel-1-r: key j (distance Tk-1-j) reads row
 * max_rel-Tk+j, clipped to row 0 past max_rel. y is (B, H*D), batch stride y_sb. The cache and
 * table are fp32, or fp16 (converted on load; halves the bytes a step reads) when the compiler
 * has _Float16.
 * ---------------------------------------------------------------------------------------- */

/* W dot products at once: out[r] = sum of the lanes of a[r]. Each level adds pairs of vectors
 * lane-group by lane-group (two two-source shuffles and an add for two vectors), so a row costs
 * about two shuffles instead of a serial W-lane sum; the lanes come out in bit-reversed order,
 * which one last shuffle undoes. */
/* lane l of the sum at group size g: the lower half of its 2g-group from a, the upper from b */
#define GLANE(g, l) ((l) % (2 * (g)) < (g) ? (l) : W + (l) - (g))
#if W == 16
#define GROUPS(g)                                                                             \
  (vi){GLANE(g, 0), GLANE(g, 1), GLANE(g, 2), GLANE(g, 3), GLANE(g, 4), GLANE(g, 5),        \
       GLANE(g, 6), GLANE(g, 7), GLANE(g, 8), GLANE(g, 9), GLANE(g, 10), GLANE(g, 11),      \
       GLANE(g, 12), GLANE(g, 13), GLANE(g, 14), GLANE(g, 15)}
#define BITREV_LANES {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15}
#elif W == 8
#define GROUPS(g)                                                                             \
  (vi){GLANE(g, 0), GLANE(g, 1), GLANE(g, 2), GLANE(g, 3), GLANE(g, 4), GLANE(g, 5),        \
       GLANE(g, 6), GLANE(g, 7)}
#define BITREV_LANES {0, 4, 2, 6, 1, 5, 3, 7}
#else
#define GROUPS(g) (vi){GLANE(g, 0), GLANE(g, 1), GLANE(g, 2), GLANE(g, 3)}
#define BITREV_LANES {0, 2, 1, 3}
#endif
INLINE vf fold(vf a, vf b, int g) {
  static const vi lo[4] = {GROUPS(1), GROUPS(2), GROUPS(4), GROUPS(8)};
  const int i = g == 1 ? 0 : g == 2 ? 1 : g == 4 ? 2 : 3;
  return __builtin_shuffle(a, b, lo[i]) + __builtin_shuffle(a, b, lo[i] + g);
}
INLINE vf sumw(vf a[W]) {
  static const vi BITREV = BITREV_LANES;
#if W == 16
  for (int i = 0; i < 8; i++) a[i] = fold(a[2 * i], a[2 * i + 1], 8);
#endif
#if W >= 8
  for (int i = 0; i < 4; i++) a[i] = fold(a[2 * i], a[2 * i + 1], 4);
#endif
  for (int i = 0; i < 2; i++) a[i] = fold(a[2 * i], a[2 * i + 1], 2);
  return __builtin_shuffle(fold(a[0], a[1], 1), BITREV);
}

#ifdef __FLT16_MAX__
#if defined(__AVX512F__)
#include <immintrin.h>
INLINE vf ld16(const _Float16 *p) {
  return (vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
#define HALF_FAST 1
#elif defined(__F16C__) && W == 8
#include <immintrin.h>
INLINE vf ld16(const _Float16 *p) { return (vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#define HALF_FAST 1
#else
typedef _Float16 vh __attribute__((vector_size(2 * W), aligned(2)));
INLINE vf ld16(const _Float16 *p) { return __builtin_convertvector(*(const vh *)p, vf); }
#if defined(__aarch64__)
#define HALF_FAST 1
#else
#define HALF_FAST 0 /* the compiler may convert lane by lane: works, but slowly */
#endif
#endif
#endif

/* W values of a cache row (fp32, or fp16 when `half`) at element i, and one value. */
INLINE vf ldx(const void *p, int64_t i, const int half) {
#ifdef __FLT16_MAX__
  if (half) return ld16((const _Float16 *)p + i);
#endif
  (void)half;
  return ld((const float *)p + i);
}
INLINE float ldx1(const void *p, int64_t i, const int half) {
#ifdef __FLT16_MAX__
  if (half) return (float)((const _Float16 *)p)[i];
#endif
  (void)half;
  return ((const float *)p)[i];
}

/* One (batch, head) pair's step. k, v, e point at element 0 of this head's rows; rs is the
 * cache's row stride; s is scratch for round16(Tk) scores. Two passes: the scores of every key
 * (sixteen at a time, reading K and the table), then the weighted sum of V. One fused pass
 * with an online softmax was measured slower (59 vs 48 us for 1000 fp16 keys, 8 heads). */
INLINE void decode_item(const float *q, const void *k, const void *v, int64_t rs, const void *e,
                        float *y, int64_t D, int64_t Tk, int64_t max_rel, float scale, float *s,
                        const int half) {
  const int64_t nv = D / W, tail = nv * W, far = Tk - max_rel; /* keys j < far read row 0 */
  const int64_t Tk16 = round16(Tk);
  vf qv[MAX_NV];
  for (int64_t c = 0; c < nv; c++) qv[c] = ld(q + c * W) * scale;
  /* scores q . (k_j + e_j), the two rows added before the product */
  for (int64_t j0 = 0; j0 < Tk; j0 += W) {
    vf a[W];
    for (int64_t r = 0; r < W; r++) {
      const int64_t j = j0 + r < Tk ? j0 + r : Tk - 1; /* past the end: repeat, unused */
      const int64_t kj = j * rs, ej = (j < far ? 0 : j - far) * D;
      a[r] = splat(0.0f);
      for (int64_t c = 0; c < nv; c++)
        a[r] += qv[c] * (ldx(k, kj + c * W, half) + ldx(e, ej + c * W, half));
    }
    st(s + j0, sumw(a));
    for (int64_t j = j0; tail < D && j < j0 + W && j < Tk; j++) {
      const int64_t kj = j * rs, ej = (j < far ? 0 : j - far) * D;
      for (int64_t d = tail; d < D; d++)
        s[j] += q[d] * scale * (ldx1(k, kj + d, half) + ldx1(e, ej + d, half));
    }
  }
  /* softmax: unnormalised weights, y scaled by 1/sum once */
  vf m = splat(-3.0e38f);
  for (int64_t j = 0; j < Tk16; j += W)
    m = sel((LANE + (int32_t)j < (int32_t)Tk) & (ld(s + j) > m), ld(s + j), m);
  const float mx = hmax(m);
  vf sum = splat(0.0f);
  for (int64_t j = 0; j < Tk16; j += W) {
    const vf x = sel((LANE + (int32_t)j) < (int32_t)Tk, vexp(ld(s + j) - mx), splat(0.0f));
    sum += x;
    st(s + j, x);
  }
  const float norm = 1.0f / hsum(sum);
  /* y = sum_j w_j v_j, two rows per iteration into separate accumulators (independent chains;
   * the weight past the last key is a zero from the softmax's padding) */
  vf a0[MAX_NV], a1[MAX_NV];
  float t0[W] = {0}, t1[W] = {0};
  for (int64_t c = 0; c < nv; c++) a0[c] = a1[c] = splat(0.0f);
  for (int64_t j = 0; j < Tk; j += 2) {
    const int64_t v0 = j * rs, v1 = j + 1 < Tk ? v0 + rs : v0;
    for (int64_t c = 0; c < nv; c++) {
      a0[c] += s[j] * ldx(v, v0 + c * W, half);
      a1[c] += s[j + 1] * ldx(v, v1 + c * W, half);
    }
    for (int64_t d = tail; d < D; d++) {
      t0[d - tail] += s[j] * ldx1(v, v0 + d, half);
      t1[d - tail] += s[j + 1] * ldx1(v, v1 + d, half);
    }
  }
  for (int64_t c = 0; c < nv; c++) st(y + c * W, (a0[c] + a1[c]) * norm);
  for (int64_t d = tail; d < D; d++) y[d] = (t0[d - tail] + t1[d - tail]) * norm;
}

#ifdef __FLT16_MAX__
int mf_relattn_has_half(void) { return HALF_FAST ? 2 : 1; }
#else
int mf_relattn_has_half(void) { return 0; }
#endif

/* fp16 storage saturates at the largest finite half instead of becoming inf. */
INLINE float clamp_half(float x) { return x > 65504.0f ? 65504.0f : x < -65504.0f ? -65504.0f : x; }

/* The step for all B*H (batch, head) pairs, spread over up to nthreads threads when there is
 * enough work. half: the cache and table are fp16. Returns 0, or -1 for bad sizes, an fp16
 * cache in a build without _Float16, or no memory. */
int mf_relattn_decode(int64_t B, int64_t H, int64_t D, int64_t length, int64_t max_rel,
                      int64_t nthreads, const float *qkv, int64_t q_sb, void *k, void *v,
                      int64_t kv_sb, int64_t kv_sh, int64_t kv_st, const void *e, float *y,
                      int64_t y_sb, float scale, int half) {
  const int64_t Tk = length + 1;
  if (D < 1 || D > MAX_NV * W || length < 0 || max_rel < 1) return -1;
#ifndef __FLT16_MAX__
  if (half) return -1;
#endif
  const int64_t items = B * H;
  int64_t n = nthreads < 1 ? 1 : nthreads;
  if (n > items) n = items;
  if (items * Tk * D < (1 << 16)) n = 1; /* less work than a thread's wake-up */
  int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads((int)n) reduction(| : failed) if (n > 1)
#endif
  {
#ifdef _OPENMP
    const int64_t t = omp_get_thread_num(), m = omp_get_num_threads();
#else
    const int64_t t = 0, m = 1;
#endif
    float *s = aligned_zeros(round16(Tk));
    failed |= s == NULL;
    for (int64_t w = items * t / m; s && w < items * (t + 1) / m; w++) {
      const int64_t b = w / H, h = w % H, kv = b * kv_sb + h * kv_sh, er = h * max_rel * D;
      const float *q = qkv + b * q_sb + h * D, *kn = q + H * D, *vn = q + 2 * H * D;
      float *yy = y + b * y_sb + h * D;
#ifdef __FLT16_MAX__
      if (half) {
        _Float16 *kh = (_Float16 *)k + kv, *vh = (_Float16 *)v + kv;
        for (int64_t d = 0; d < D; d++) {
          kh[length * kv_st + d] = (_Float16)clamp_half(kn[d]);
          vh[length * kv_st + d] = (_Float16)clamp_half(vn[d]);
        }
        decode_item(q, kh, vh, kv_st, (const _Float16 *)e + er, yy, D, Tk, max_rel, scale, s, 1);
        continue;
      }
#endif
      float *kf = (float *)k + kv, *vf_ = (float *)v + kv;
      memcpy(kf + length * kv_st, kn, D * sizeof(float));
      memcpy(vf_ + length * kv_st, vn, D * sizeof(float));
      decode_item(q, kf, vf_, kv_st, (const float *)e + er, yy, D, Tk, max_rel, scale, s, 0);
    }
    free(s);
  }
  return failed ? -1 : 0;
}
