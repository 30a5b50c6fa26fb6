// CUDA kernels of the ASG operator: one thread block per utterance, the same per-frame normalised
// probability-domain recursions as asg_lattices.h (see there), in double. Lengths are read on the
// device: nothing here synchronises with the host.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>

#include <cmath>

namespace {

constexpr int kThreads = 256;  // a power of two: the reductions halve it

__device__ double block_sum(double value, double* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

__device__ double block_max(double value, double* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] = fmax(shared[threadIdx.x], shared[threadIdx.x + stride]);
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();
  return result;
}

// max_i E[t][i] over the block.
template <typename scalar_t>
__device__ double frame_maximum(const scalar_t* row, int64_t C, double* shared) {
  double m = -INFINITY;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) m = fmax(m, static_cast<double>(row[i]));
  return block_max(m, shared);
}

// Whether utterance b is feasible (1 <= L <= T) with every label in [0, C); lengths are clamped.
__device__ bool utterance_shape(const int64_t* input_lengths, const int64_t* target_lengths, int64_t b,
                                int64_t T_max, int64_t S, int64_t* T, int64_t* L) {
  *T = min(max(input_lengths[b], int64_t(0)), T_max);
  *L = min(max(target_lengths[b], int64_t(0)), S);
  return *T > 0 && *L > 0 && *L <= *T;
}

template <typename scalar_t>
__global__ void fully_connected_kernel(const scalar_t* __restrict__ emissions, const double* __restrict__ eA,
                                       const double* __restrict__ a_max_ptr, const int64_t* __restrict__ input_lengths,
                                       const int64_t* __restrict__ target_lengths, int64_t T_max, int64_t C,
                                       int64_t S, bool grads, double* alpha_ws, double* norm_ws, double* max_ws,
                                       double* beta_ws, double* weighted_ws, double* log_z_out,
                                       double* grad_emissions, double* grad_transitions) {
  __shared__ double shared[kThreads];
  const int64_t b = blockIdx.x;
  int64_t T, L;
  if (!utterance_shape(input_lengths, target_lengths, b, T_max, S, &T, &L)) return;
  const double a_max = *a_max_ptr;
  const scalar_t* E = emissions + b * T_max * C;
  double* alpha = alpha_ws + b * T_max * C;
  double* norm = norm_ws + b * T_max;
  double* frame_max = max_ws + b * T_max;
  double log_z = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const double m = frame_maximum(E + t * C, C, shared);
    double local = 0.0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      double r = 1.0;
      if (t > 0) {
        r = 0.0;
        const double* row = eA + i * C;
        const double* previous = alpha + (t - 1) * C;
        for (int64_t j = 0; j < C; ++j) r += row[j] * previous[j];
      }
      const double value = exp(static_cast<double>(E[t * C + i]) - m) * r;
      alpha[t * C + i] = value;
      local += value;
    }
    const double n = block_sum(local, shared);
    if (!(n > 0.0)) return;  // underflow: log Z stays -inf
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) alpha[t * C + i] /= n;
    if (threadIdx.x == 0) {
      norm[t] = n;
      frame_max[t] = m;
    }
    log_z += log(n) + m + (t > 0 ? a_max : 0.0);
    __syncthreads();
  }
  if (threadIdx.x == 0) log_z_out[b] = log_z;
  if (!grads) return;

  double* beta = beta_ws + b * 2 * C;
  double* next_beta = beta + C;
  double* weighted = weighted_ws + b * C;
  double* grad_e = grad_emissions + b * T_max * C;
  double* grad_t = grad_transitions + b * C * C;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) beta[i] = 1.0;
  __syncthreads();
  for (int64_t t = T - 1; t >= 0; --t) {
    const double* a = alpha + t * C;
    double local = 0.0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) local += a[i] * beta[i];
    const double posterior_norm = block_sum(local, shared);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) grad_e[t * C + i] = a[i] * beta[i] / posterior_norm;
    if (t == 0) break;
    const double scale = 1.0 / (norm[t] * posterior_norm);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
      weighted[i] = exp(static_cast<double>(E[t * C + i]) - frame_max[t]) * beta[i];
    __syncthreads();
    const double* previous = alpha + (t - 1) * C;
    for (int64_t k = threadIdx.x; k < C * C; k += blockDim.x)
      grad_t[k] += weighted[k / C] * scale * eA[k] * previous[k % C];
    local = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      double sum = 0.0;
      for (int64_t i = 0; i < C; ++i) sum += eA[i * C + j] * weighted[i];
      next_beta[j] = sum;
      local += sum;
    }
    const double n = block_sum(local, shared);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) beta[j] = next_beta[j] / n;
    __syncthreads();
  }
}

template <typename scalar_t>
__global__ void force_aligned_kernel(const scalar_t* __restrict__ emissions, const double* __restrict__ eA,
                                     const double* __restrict__ a_max_ptr, const int64_t* __restrict__ targets,
                                     const int64_t* __restrict__ input_lengths,
                                     const int64_t* __restrict__ target_lengths, int64_t T_max, int64_t C, int64_t S,
                                     bool grads, double* alpha_ws, double* norm_ws, double* max_ws, double* beta_ws,
                                     double* weighted_ws, double* log_z_out, double* grad_emissions,
                                     double* grad_transitions) {
  __shared__ double shared[kThreads];
  const int64_t b = blockIdx.x;
  int64_t T, L;
  if (!utterance_shape(input_lengths, target_lengths, b, T_max, S, &T, &L)) return;
  const int64_t* y = targets + b * S;
  double bad = 0.0;
  for (int64_t s = threadIdx.x; s < L; s += blockDim.x) bad += (y[s] < 0 || y[s] >= C) ? 1.0 : 0.0;
  if (block_sum(bad, shared) > 0.0) {
    if (threadIdx.x == 0) log_z_out[b] = NAN;  // a label outside [0, C): the loss says so
    return;
  }
  const double a_max = *a_max_ptr;
  const scalar_t* E = emissions + b * T_max * C;
  double* alpha = alpha_ws + b * T_max * S;
  double* norm = norm_ws + b * T_max;
  double* frame_max = max_ws + b * T_max;
  double log_z = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const double m = frame_maximum(E + t * C, C, shared);
    double local = 0.0;
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x) {
      const double e = exp(static_cast<double>(E[t * C + y[s]]) - m);
      double value;
      if (t == 0) {
        value = s == 0 ? e : 0.0;
      } else {
        const double* previous = alpha + (t - 1) * S;
        value = eA[y[s] * C + y[s]] * previous[s];
        if (s > 0) value += eA[y[s] * C + y[s - 1]] * previous[s - 1];
        value *= e;
      }
      alpha[t * S + s] = value;
      local += value;
    }
    const double n = block_sum(local, shared);
    if (!(n > 0.0)) return;
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x) alpha[t * S + s] /= n;
    if (threadIdx.x == 0) {
      norm[t] = n;
      frame_max[t] = m;
    }
    log_z += log(n) + m + (t > 0 ? a_max : 0.0);
    __syncthreads();
  }
  const double last = alpha[(T - 1) * S + L - 1];
  if (!(last > 0.0)) return;
  if (threadIdx.x == 0) log_z_out[b] = log_z + log(last);
  if (!grads) return;

  double* beta = beta_ws + b * 2 * S;
  double* next_beta = beta + S;
  double* weighted = weighted_ws + b * S;
  double* grad_e = grad_emissions + b * T_max * C;
  double* grad_t = grad_transitions + b * C * C;
  for (int64_t s = threadIdx.x; s < L; s += blockDim.x) beta[s] = s == L - 1 ? 1.0 : 0.0;
  __syncthreads();
  for (int64_t t = T - 1; t >= 0; --t) {
    const double* a = alpha + t * S;
    double local = 0.0;
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x) local += a[s] * beta[s];
    const double posterior_norm = block_sum(local, shared);
    // Several states can carry the same label: the gradients accumulate atomically.
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x)
      atomicAdd(grad_e + t * C + y[s], -a[s] * beta[s] / posterior_norm);
    if (t == 0) break;
    const double scale = 1.0 / (norm[t] * posterior_norm);
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x)
      weighted[s] = exp(static_cast<double>(E[t * C + y[s]]) - frame_max[t]) * beta[s];
    __syncthreads();
    const double* previous = alpha + (t - 1) * S;
    local = 0.0;
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x) {
      const double self_loop = eA[y[s] * C + y[s]];
      atomicAdd(grad_t + y[s] * C + y[s], -weighted[s] * scale * self_loop * previous[s]);
      double value = self_loop * weighted[s];
      if (s > 0) {
        atomicAdd(grad_t + y[s] * C + y[s - 1], -weighted[s] * scale * eA[y[s] * C + y[s - 1]] * previous[s - 1]);
      }
      if (s + 1 < L) value += eA[y[s + 1] * C + y[s]] * weighted[s + 1];
      next_beta[s] = value;
      local += value;
    }
    const double n = block_sum(local, shared);
    for (int64_t s = threadIdx.x; s < L; s += blockDim.x) beta[s] = next_beta[s] / n;
    __syncthreads();
  }
}

}  // namespace

// Fills the outputs of asg_forward_cuda (see asg_cuda.cpp) on the current stream.
void launch_asg_kernels(const at::Tensor& emissions, const at::Tensor& eA, const at::Tensor& a_max,
                        const at::Tensor& targets, const at::Tensor& input_lengths, const at::Tensor& target_lengths,
                        bool grads, at::Tensor& fully_connected, at::Tensor& force_aligned,
                        at::Tensor& grad_emissions, at::Tensor& grad_transitions) {
  const int64_t B = emissions.size(0), T_max = emissions.size(1), C = emissions.size(2), S = targets.size(1);
  if (B == 0) return;
  const auto f64 = emissions.options().dtype(at::kDouble);
  const int64_t width = std::max<int64_t>(C, S);
  auto alpha = at::empty({B, T_max, width}, f64);
  auto norm = at::empty({B, T_max}, f64);
  auto frame_max = at::empty({B, T_max}, f64);
  auto beta = at::empty({B, 2, width}, f64);
  auto weighted = at::empty({B, width}, f64);
  double* ge = grads ? grad_emissions.data_ptr<double>() : nullptr;
  double* gt = grads ? grad_transitions.data_ptr<double>() : nullptr;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(emissions.scalar_type(), "asg_forward_cuda", [&] {
    // The force-aligned kernel adds to the gradients the fully connected one wrote: same stream, in order.
    fully_connected_kernel<scalar_t><<<B, kThreads, 0, stream>>>(
        emissions.data_ptr<scalar_t>(), eA.data_ptr<double>(), a_max.data_ptr<double>(),
        input_lengths.data_ptr<int64_t>(), target_lengths.data_ptr<int64_t>(), T_max, C, S, grads,
        alpha.data_ptr<double>(), norm.data_ptr<double>(), frame_max.data_ptr<double>(), beta.data_ptr<double>(),
        weighted.data_ptr<double>(), fully_connected.data_ptr<double>(), ge, gt);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    force_aligned_kernel<scalar_t><<<B, kThreads, 0, stream>>>(
        emissions.data_ptr<scalar_t>(), eA.data_ptr<double>(), a_max.data_ptr<double>(),
        targets.data_ptr<int64_t>(), input_lengths.data_ptr<int64_t>(), target_lengths.data_ptr<int64_t>(), T_max,
        C, S, grads, alpha.data_ptr<double>(), norm.data_ptr<double>(), frame_max.data_ptr<double>(),
        beta.data_ptr<double>(), weighted.data_ptr<double>(), force_aligned.data_ptr<double>(), ge, gt);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}
