// CPU kernel of the ASG operator: one utterance per task of at::parallel_for.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "asg_binding.h"
#include "asg_lattices.h"

namespace {

template <typename scalar_t>
void forward_utterance(const scalar_t* emissions, const double* eA, const double* eAT, double a_max, const int64_t* target,
                       int64_t T, int64_t L, int64_t C, bool grads, double* fully_connected_log_z,
                       double* force_aligned_log_z, double* grad_emissions, double* grad_transitions) {
  std::vector<double> eE, frame_max;
  asg::scaled_emissions(emissions, T, C, eE, frame_max);
  std::vector<double> aligned_emissions, aligned_transitions;
  if (grads) {
    aligned_emissions.assign(T * C, 0.0);
    aligned_transitions.assign(C * C, 0.0);
  }
  *fully_connected_log_z = asg::fully_connected(eE, frame_max, eA, eAT, a_max, T, C, grads, grad_emissions, grad_transitions);
  *force_aligned_log_z = asg::force_aligned(eE, frame_max, eA, a_max, target, L, T, C, grads,
                                            aligned_emissions.data(), aligned_transitions.data());
  if (!grads) return;
  for (int64_t k = 0; k < T * C; ++k) grad_emissions[k] -= aligned_emissions[k];
  for (int64_t k = 0; k < C * C; ++k) grad_transitions[k] -= aligned_transitions[k];
}

}  // namespace

// Returns (fully connected log Z (B), force-aligned log Z (B), d(fc - fa)/dE (B, T, C),
// d(fc - fa)/dA (B, C, C)), all float64; the gradients are empty unless `grads`. Utterances with
// T = 0, L = 0 or L > T get log Z = -inf for the force-aligned lattice and zero gradients.
std::vector<torch::Tensor> asg_forward_cpu(const torch::Tensor& emissions_in, const torch::Tensor& transitions_in,
                                           const torch::Tensor& targets_in, const torch::Tensor& input_lengths_in,
                                           const torch::Tensor& target_lengths_in, bool grads) {
  asg::check_shapes(emissions_in, transitions_in, targets_in, input_lengths_in, target_lengths_in);
  TORCH_CHECK(emissions_in.scalar_type() == transitions_in.scalar_type(),
              "emissions and transitions must share a dtype");
  const auto emissions = emissions_in.contiguous();
  const auto targets = targets_in.contiguous();
  const auto input_lengths = input_lengths_in.contiguous();
  const auto target_lengths = target_lengths_in.contiguous();
  const int64_t B = emissions.size(0), T_max = emissions.size(1), C = emissions.size(2), S = targets.size(1);
  const auto transitions = transitions_in.to(torch::kDouble).contiguous();
  const double a_max = C > 0 ? transitions.max().item<double>() : 0.0;
  const auto eA = (transitions - a_max).exp().contiguous();
  const auto eAT = eA.t().contiguous();

  auto outputs = asg::allocate_outputs(emissions, grads);
  auto &fully_connected = outputs[0], &force_aligned = outputs[1];
  auto &grad_emissions = outputs[2], &grad_transitions = outputs[3];

  const int64_t* frames = input_lengths.data_ptr<int64_t>();
  const int64_t* labels = target_lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(frames[b] >= 0 && frames[b] <= T_max, "input length ", frames[b], " of utterance ", b,
                " is outside [0, ", T_max, "]");
    TORCH_CHECK(labels[b] >= 0 && labels[b] <= S, "target length ", labels[b], " of utterance ", b,
                " is outside [0, ", S, "]");
  }
  const int64_t* target_data = targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < labels[b]; ++s)
      TORCH_CHECK(target_data[b * S + s] >= 0 && target_data[b * S + s] < C, "target ", target_data[b * S + s],
                  " of utterance ", b, " is not a label in [0, ", C, ")");

  AT_DISPATCH_FLOATING_TYPES(emissions.scalar_type(), "asg_forward_cpu", [&] {
    const scalar_t* emission_data = emissions.data_ptr<scalar_t>();
    const double* eA_data = eA.data_ptr<double>();
    const double* eAT_data = eAT.data_ptr<double>();
    double* fc = fully_connected.data_ptr<double>();
    double* fa = force_aligned.data_ptr<double>();
    double* ge = grads ? grad_emissions.data_ptr<double>() : nullptr;
    double* gt = grads ? grad_transitions.data_ptr<double>() : nullptr;
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const int64_t T = frames[b], L = labels[b];
        if (T == 0 || L == 0 || L > T) continue;  // infeasible: the caller masks these
        forward_utterance(emission_data + b * T_max * C, eA_data, eAT_data, a_max, target_data + b * S, T, L, C, grads,
                          fc + b, fa + b, grads ? ge + b * T_max * C : nullptr, grads ? gt + b * C * C : nullptr);
      }
    });
  });
  return outputs;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("asg_forward", &asg_forward_cpu,
        "ASG lattices on the CPU: (fully connected log Z, force-aligned log Z, dE, dA), float64");
}
