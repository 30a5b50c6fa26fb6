// What the CPU and CUDA bindings share: the shape and dtype checks of the inputs and the outputs'
// allocation (fully connected log Z (B), force-aligned log Z (B), dE (B, T, C), dA (B, C, C), float64,
// the gradients empty unless requested).
#pragma once

#include <torch/extension.h>

#include <limits>
#include <vector>

namespace asg {

inline void check_shapes(const torch::Tensor& emissions, const torch::Tensor& transitions,
                         const torch::Tensor& targets, const torch::Tensor& input_lengths,
                         const torch::Tensor& target_lengths) {
  TORCH_CHECK(emissions.dim() == 3, "emissions must be (B, T, C), got ", emissions.sizes());
  const int64_t B = emissions.size(0), C = emissions.size(2);
  TORCH_CHECK(transitions.dim() == 2 && transitions.size(0) == C && transitions.size(1) == C,
              "transitions must be (C, C) with C = ", C, ", got ", transitions.sizes());
  TORCH_CHECK(targets.dim() == 2 && targets.size(0) == B, "targets must be (B, S), got ", targets.sizes());
  TORCH_CHECK(input_lengths.numel() == B && target_lengths.numel() == B,
              "one input and one target length per utterance");
  TORCH_CHECK(targets.scalar_type() == torch::kLong && input_lengths.scalar_type() == torch::kLong &&
                  target_lengths.scalar_type() == torch::kLong,
              "targets and lengths must be int64");
}

inline std::vector<torch::Tensor> allocate_outputs(const torch::Tensor& emissions, bool grads) {
  const int64_t B = emissions.size(0), T_max = emissions.size(1), C = emissions.size(2);
  const auto f64 = emissions.options().dtype(torch::kDouble);
  const double negative_infinity = -std::numeric_limits<double>::infinity();
  return {torch::full({B}, negative_infinity, f64), torch::full({B}, negative_infinity, f64),
          grads ? torch::zeros({B, T_max, C}, f64) : torch::empty({0}, f64),
          grads ? torch::zeros({B, C, C}, f64) : torch::empty({0}, f64)};
}

}  // namespace asg
