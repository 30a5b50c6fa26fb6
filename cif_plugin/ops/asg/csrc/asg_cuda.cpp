// Python binding of the CUDA kernels (asg_cuda_kernels.cu): same contract as asg_cpu.cpp, except that
// lengths are clamped and labels are checked on the device (a label outside [0, C) gives a NaN
// force-aligned log Z) so that no value is copied to the host.
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>

#include "asg_binding.h"

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
  asg::check_shapes(emissions_in, transitions_in, targets_in, input_lengths_in, target_lengths_in);
  const int64_t C = emissions_in.size(2);
  const c10::cuda::CUDAGuard guard(emissions_in.device());
  const auto emissions = emissions_in.contiguous();
  const auto targets = targets_in.contiguous();
  const auto transitions = transitions_in.to(torch::kDouble).contiguous();
  const auto a_max = C > 0 ? transitions.max() : torch::zeros({}, transitions.options());  // stays on the device
  const auto eA = (transitions - a_max).exp().contiguous();

  auto outputs = asg::allocate_outputs(emissions, grads);
  launch_asg_kernels(emissions, eA, a_max, targets, input_lengths_in.contiguous(), target_lengths_in.contiguous(),
                     grads, outputs[0], outputs[1], outputs[2], outputs[3]);
  return outputs;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("asg_forward", &asg_forward_cuda,
        "ASG lattices on the GPU: (fully connected log Z, force-aligned log Z, dE, dA), float64");
}
