// ASG lattices of one utterance, shared by the CPU kernel: the fully connected lattice (every label
// at every frame) and the force-aligned lattice (the target with self-loops).
//
// Both recursions run in the probability domain with per-frame normalisation, in double:
//   eE[t][i] = exp(E[t][i] - max_i E[t][i]),  eA[i][j] = exp(A[i][j] - max A)
//   a_t = eE[t] * (eA @ a_{t-1}), n_t = sum(a_t), alpha_hat_t = a_t / n_t
//   log Z = sum_t (log n_t + max_i E[t][i]) + (T - 1) max A
// so the inner loops are multiply-adds, not exp/log. Backward variables are normalised per frame
// the same way; posteriors are normalised per frame, which makes them exact.
// Transitions: A[i][j] scores moving from label j (frame t-1) to label i (frame t).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

// The hot loops are multiply-adds over contiguous doubles: compiled twice, for x86-64-v3 (AVX2, FMA)
// and the baseline, and chosen when the library loads.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ASG_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ASG_VECTOR_CLONES
#endif

namespace asg {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// out[j] += sum_k weights[k] * rows[k][j] (row k at base + k * C), four rows per pass over out so
// that each load and store of out carries four multiply-adds.
ASG_VECTOR_CLONES inline void add_weighted_rows(double* out, const double* base, const double* weights, int64_t count,
                              int64_t C) {
  int64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    const double *r0 = base + k * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
    const double w0 = weights[k], w1 = weights[k + 1], w2 = weights[k + 2], w3 = weights[k + 3];
    for (int64_t j = 0; j < C; ++j) out[j] += w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j];
  }
  for (; k < count; ++k) {
    const double* row = base + k * C;
    const double w = weights[k];
    for (int64_t j = 0; j < C; ++j) out[j] += w * row[j];
  }
}

// Emissions of one utterance as eE (T x C) and the per-frame maxima (T).
template <typename scalar_t>
void scaled_emissions(const scalar_t* emissions, int64_t T, int64_t C, std::vector<double>& eE,
                      std::vector<double>& frame_max) {
  eE.resize(T * C);
  frame_max.resize(T);
  for (int64_t t = 0; t < T; ++t) {
    const scalar_t* row = emissions + t * C;
    double m = kNegInf;
    for (int64_t i = 0; i < C; ++i) m = std::max(m, static_cast<double>(row[i]));
    frame_max[t] = m;
    for (int64_t i = 0; i < C; ++i) eE[t * C + i] = std::exp(static_cast<double>(row[i]) - m);
  }
}

// Fully connected lattice. Returns log Z; with grads, adds d log Z / dE to grad_emissions (T x C)
// and d log Z / dA to grad_transitions (C x C).
// eAT is eA transposed: the alpha step runs as column updates, which vectorise (a row dot product,
// a serial chain of additions under strict floating point, does not).
ASG_VECTOR_CLONES inline double fully_connected(const std::vector<double>& eE, const std::vector<double>& frame_max,
                              const double* eA, const double* eAT, double a_max, int64_t T, int64_t C,
                              bool grads, double* grad_emissions, double* grad_transitions) {
  std::vector<double> alpha(T * C), norm(T);
  double log_z = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    double* current = &alpha[t * C];
    const double* e = &eE[t * C];
    if (t == 0) {
      for (int64_t i = 0; i < C; ++i) current[i] = e[i];
    } else {
      const double* previous = &alpha[(t - 1) * C];
      std::fill(current, current + C, 0.0);
      add_weighted_rows(current, eAT, previous, C, C);  // current[i] = sum_j eA[i][j] previous[j]
      for (int64_t i = 0; i < C; ++i) current[i] *= e[i];
    }
    double n = 0.0;
    for (int64_t i = 0; i < C; ++i) n += current[i];
    if (!(n > 0.0)) return kNegInf;  // underflow: only for transition ranges beyond 700 nats
    for (int64_t i = 0; i < C; ++i) current[i] /= n;
    norm[t] = n;
    log_z += std::log(n) + frame_max[t] + (t > 0 ? a_max : 0.0);
  }
  if (!grads) return log_z;

  // d log Z / dA[i][j] = eA[i][j] * sum_{t>=1} u_t[i] alpha_hat[t-1][j] with
  // u_t[i] = eE[t][i] beta_hat[t][i] / (n_t * posterior_norm_t): one matrix product after the loop.
  std::vector<double> beta(C, 1.0), next_beta(C), u(T * C, 0.0);
  for (int64_t t = T - 1; t >= 0; --t) {
    const double* a = &alpha[t * C];
    double posterior_norm = 0.0;
    for (int64_t i = 0; i < C; ++i) posterior_norm += a[i] * beta[i];
    for (int64_t i = 0; i < C; ++i) grad_emissions[t * C + i] += a[i] * beta[i] / posterior_norm;
    if (t == 0) break;
    const double* e = &eE[t * C];
    const double scale = 1.0 / (norm[t] * posterior_norm);
    double* weighted = &u[t * C];
    for (int64_t i = 0; i < C; ++i) weighted[i] = e[i] * beta[i];
    std::fill(next_beta.begin(), next_beta.end(), 0.0);
    add_weighted_rows(next_beta.data(), eA, weighted, C, C);  // next_beta[j] = sum_i eA[i][j] weighted[i]
    for (int64_t i = 0; i < C; ++i) weighted[i] *= scale;
    double n = 0.0;
    for (int64_t j = 0; j < C; ++j) n += next_beta[j];
    for (int64_t j = 0; j < C; ++j) beta[j] = next_beta[j] / n;
  }
  // G[i][j] = sum_{t>=1} u[t][i] alpha_hat[t-1][j]: row i weights the rows of alpha by u[., i].
  std::vector<double> G(C * C, 0.0), u_column(T);
  for (int64_t i = 0; i < C; ++i) {
    for (int64_t t = 1; t < T; ++t) u_column[t - 1] = u[t * C + i];
    add_weighted_rows(&G[i * C], alpha.data(), u_column.data(), T - 1, C);
  }
  for (int64_t k = 0; k < C * C; ++k) grad_transitions[k] += eA[k] * G[k];
  return log_z;
}

// Force-aligned lattice of the target y (L labels, 1 <= L <= T). Same outputs as above.
ASG_VECTOR_CLONES inline double force_aligned(const std::vector<double>& eE, const std::vector<double>& frame_max,
                            const double* eA, double a_max, const int64_t* y, int64_t L, int64_t T,
                            int64_t C, bool grads, double* grad_emissions, double* grad_transitions) {
  std::vector<double> self_loop(L), advance(L, 0.0);
  for (int64_t s = 0; s < L; ++s) {
    self_loop[s] = eA[y[s] * C + y[s]];
    if (s > 0) advance[s] = eA[y[s] * C + y[s - 1]];
  }
  std::vector<double> alpha(T * L, 0.0), norm(T);
  double log_z = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    double* current = &alpha[t * L];
    const double* e = &eE[t * C];
    if (t == 0) {
      current[0] = e[y[0]];
    } else {
      const double* previous = &alpha[(t - 1) * L];
      current[0] = e[y[0]] * self_loop[0] * previous[0];
      for (int64_t s = 1; s < L; ++s)
        current[s] = e[y[s]] * (self_loop[s] * previous[s] + advance[s] * previous[s - 1]);
    }
    double n = 0.0;
    for (int64_t s = 0; s < L; ++s) n += current[s];
    if (!(n > 0.0)) return kNegInf;
    for (int64_t s = 0; s < L; ++s) current[s] /= n;
    norm[t] = n;
    log_z += std::log(n) + frame_max[t] + (t > 0 ? a_max : 0.0);
  }
  const double last = alpha[(T - 1) * L + L - 1];
  if (!(last > 0.0)) return kNegInf;
  log_z += std::log(last);
  if (!grads) return log_z;

  std::vector<double> beta(L, 0.0), next_beta(L), weighted(L);
  beta[L - 1] = 1.0;
  for (int64_t t = T - 1; t >= 0; --t) {
    const double* a = &alpha[t * L];
    double posterior_norm = 0.0;
    for (int64_t s = 0; s < L; ++s) posterior_norm += a[s] * beta[s];
    for (int64_t s = 0; s < L; ++s) grad_emissions[t * C + y[s]] += a[s] * beta[s] / posterior_norm;
    if (t == 0) break;
    const double* e = &eE[t * C];
    const double* previous = &alpha[(t - 1) * L];
    const double scale = 1.0 / (norm[t] * posterior_norm);
    for (int64_t s = 0; s < L; ++s) weighted[s] = e[y[s]] * beta[s];
    for (int64_t s = 0; s < L; ++s) {
      grad_transitions[y[s] * C + y[s]] += weighted[s] * scale * self_loop[s] * previous[s];
      next_beta[s] = self_loop[s] * weighted[s];
      if (s > 0) grad_transitions[y[s] * C + y[s - 1]] += weighted[s] * scale * advance[s] * previous[s - 1];
      if (s + 1 < L) next_beta[s] += advance[s + 1] * weighted[s + 1];
    }
    double n = 0.0;
    for (int64_t s = 0; s < L; ++s) n += next_beta[s];
    for (int64_t s = 0; s < L; ++s) beta[s] = next_beta[s] / n;
  }
  return log_z;
}

}  // namespace asg
