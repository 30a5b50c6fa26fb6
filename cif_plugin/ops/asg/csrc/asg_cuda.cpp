// Python binding of the CUDA kernels (asg_cuda_kernels.cu): same contract as asg_cpu.cpp, except that
// lengths are clamped and labels are checked on the device (a label outside [0, C) gives a NaN
// force-aligned log Z) so that no value is copied to the host.
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>

#include <limits>

void launch_asg_kernels(const at::Tensor& emissions, const at::Tensor& eA, const at::Tensor& a_max,
                        const at::Tensor& targets, const at::Tensor& input_lengths, const at::Tensor& target_lengths,
                        bool grads, at::Tensor& fully_connected, at::Tensor& force_aligned,
                        at::Tensor& grad_emissions, at::Tensor& grad_transitions);

std::vector<torch::Tensor> asg_forward_cuda(const torch::Tensor& emissions_in, const torch::Tensor& transitions_in,
                                            const torch::Tensor& targets_in, const torch::Tensor& input_lengths_in,
                                            const torch::Tensor& target_lengths_in, bool grads) {
  TORCH_CHECK(emissions_in.is_cuda(), "emissions must be a CUDA tensor");
  for (const auto* tensor : {&transitions_in, &targets_in, &input_lengths_in, &target_lengths_in})
    TORCH_CHECK(tensor->device() == emissions_in.device(), "every input must be on ", emissions_in.device());
  TORCH_CHECK(emissions_in.dim() == 3, "emissions must be (B, T, C), got ", emissions_in.sizes());
  const int64_t B = emissions_in.size(0), T_max = emissions_in.size(1), C = emissions_in.size(2);
  TORCH_CHECK(transitions_in.dim() == 2 && transitions_in.size(0) == C && transitions_in.size(1) == C,
              "transitions must be (C, C) with C = ", C, ", got ", transitions_in.sizes());
  TORCH_CHECK(targets_in.dim() == 2 && targets_in.size(0) == B, "targets must be (B, S), got ", targets_in.sizes());
  TORCH_CHECK(input_lengths_in.numel() == B && target_lengths_in.numel() == B,
              "one input and one target length per utterance");
  TORCH_CHECK(targets_in.scalar_type() == torch::kLong && input_lengths_in.scalar_type() == torch::kLong &&
                  target_lengths_in.scalar_type() == torch::kLong,
              "targets and lengths must be int64");
  const c10::cuda::CUDAGuard guard(emissions_in.device());
  const auto emissions = emissions_in.contiguous();
  const auto targets = targets_in.contiguous();
  const auto transitions = transitions_in.to(torch::kDouble).contiguous();
  const auto a_max = C > 0 ? transitions.max() : torch::zeros({}, transitions.options());  // stays on the device
  const auto eA = (transitions - a_max).exp().contiguous();

  const auto f64 = emissions.options().dtype(torch::kDouble);
  const double negative_infinity = -std::numeric_limits<double>::infinity();
  auto fully_connected = torch::full({B}, negative_infinity, f64);
  auto force_aligned = torch::full({B}, negative_infinity, f64);
  auto grad_emissions = grads ? torch::zeros({B, T_max, C}, f64) : torch::empty({0}, f64);
  auto grad_transitions = grads ? torch::zeros({B, C, C}, f64) : torch::empty({0}, f64);
  launch_asg_kernels(emissions, eA, a_max, targets, input_lengths_in.contiguous(), target_lengths_in.contiguous(),
                     grads, fully_connected, force_aligned, grad_emissions, grad_transitions);
  return {fully_connected, force_aligned, grad_emissions, grad_transitions};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("asg_forward", &asg_forward_cuda,
        "ASG lattices on the GPU: (fully connected log Z, force-aligned log Z, dE, dA), float64");
}
