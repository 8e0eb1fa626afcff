"""Many students trained at once: stacked weights and batched matrix products.

A sweep trains dozens of small networks. One at a time, each epoch costs a
few tiny matrix products plus Python and autograd overhead, and the overhead
dominates. Here the weights of K students are stacked along a leading model
dimension and zero-padded to a common width P, so one batched product per
layer serves all K. The forward and backward passes are written out by hand,
and Adam updates one flat buffer that contains every parameter.

Padding is exact, not approximate: a padded unit has zero incoming weights,
zero bias and zero outgoing weights. Its pre-activation is 0, ReLU passes no
gradient at 0, so its weights get zero gradient, Adam's moments stay 0 and
the update 0 / (sqrt(0) + eps) is 0. It stays zero for the whole run.
"""

import math

import numpy as np
import torch

from ddcore.models import StudentMLP, build_model


def relu_backward(grad, activation):
    """Gradient through ReLU: zero where its output is 0, as torch's own backward does."""
    return torch.ops.aten.threshold_backward(grad, activation, 0)


def student_generator(width, seed):
    """Generator for the student (width, seed): its own stream per pair.

    Mixing width and seed through SeedSequence gives every run of a sweep an
    independent initialisation, reproducible from the two numbers alone.
    """
    state = np.random.SeedSequence([seed, width]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def init_student(width, seed, d_in, d_out, dtype=torch.float32):
    """Build a StudentMLP initialised as nn.Linear would be, from student_generator.

    Returns the model and its generator, which then shuffles that student's minibatches.
    """
    generator = student_generator(width, seed)
    model = build_model(lambda: StudentMLP(d_in, width, d_out), generator)
    return model.to(dtype), generator


class FlatAdam:
    """Adam over the flat parameter buffers of several StackedStudents, in one call.

    torch._fused_adam_ is the kernel behind torch.optim.Adam(fused=True): it
    updates every buffer in one pass. Calling it directly skips about 10 us
    of Python bookkeeping per step, a few percent of a small sweep's epoch.
    Adam acts on each element alone, so each student gets the update its own
    torch.optim.Adam with the default betas and eps would give it. The tests
    compare the two.
    """

    def __init__(self, stacks, lr):
        self.lr = lr
        self.params = [stack.flat for stack in stacks]
        self.grads = [stack.grad_flat for stack in stacks]
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.step_count = torch.zeros((), dtype=torch.float32)

    def step(self):
        # As torch.optim.Adam does: count the step first, for bias correction.
        self.step_count += 1
        torch._fused_adam_(
            self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, [],
            [self.step_count] * len(self.params), amsgrad=False, lr=self.lr,
            beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False,
        )


class StackedStudents:
    """K students of widths <= P, as padded tensors sharing one flat buffer."""

    def __init__(self, students, d_in, d_out, dtype=torch.float32):
        widths = [s.layers[0].out_features for s in students]
        self.k, self.p = len(students), max(widths)
        self.d_in, self.d_out = d_in, d_out
        self.shapes = {
            "w1": (self.k, self.p, d_in),
            "b1": (self.k, self.p),
            "w2": (self.k, self.p, self.p),
            "b2": (self.k, self.p),
            "w3": (self.k, d_out, self.p),
            "b3": (self.k, d_out),
        }
        size = sum(math.prod(shape) for shape in self.shapes.values())

        # Parameters and gradients are views into two flat buffers, so one
        # optimizer step covers every student.
        self.flat = torch.zeros(size, dtype=dtype)
        self.grad_flat = torch.zeros(size, dtype=dtype)
        self.params = self._views(self.flat)
        self.grads = self._views(self.grad_flat)

        for k, student in enumerate(students):
            self._copy_in(k, student)

    def _views(self, flat):
        views, start = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            views[name] = flat[start : start + n].view(shape)
            start += n
        return views

    @torch.no_grad()
    def _copy_in(self, k, student):
        first, second, third = student.layers[0], student.layers[2], student.layers[4]
        m = first.out_features
        self.params["w1"][k, :m] = first.weight
        self.params["b1"][k, :m] = first.bias
        self.params["w2"][k, :m, :m] = second.weight
        self.params["b2"][k, :m] = second.bias
        self.params["w3"][k, :, :m] = third.weight
        self.params["b3"][k] = third.bias

    def forward(self, x):
        """Outputs (K, d_out, n) and hidden activations for inputs x.

        x is (n, d_in), shared by all K students, or (K, n, d_in) with a
        minibatch of its own for each student.

        Activations are kept as (K, features, n), so every layer is W @ a + b:
        the weights enter the products untransposed, and the first layer,
        whose input all K students share, is one plain matrix product.
        """
        w = self.params
        if x.dim() == 2:
            z1 = torch.addmm(w["b1"].view(-1, 1), w["w1"].view(-1, self.d_in), x.T)
            a1 = z1.view(self.k, self.p, -1).relu_()
        else:
            a1 = torch.baddbmm(w["b1"].unsqueeze(2), w["w1"], x.transpose(1, 2)).relu_()
        a2 = torch.baddbmm(w["b2"].unsqueeze(2), w["w2"], a1).relu_()
        out = torch.baddbmm(w["b3"].unsqueeze(2), w["w3"], a2)
        return out, a1, a2

    def loss_and_grads(self, x, y):
        """Per-model MSE on (x, y), with its gradients written into self.grads.

        The hand-written backward pass of mean((out - y)^2) over n rows and
        d_out outputs. ReLU passes gradient only where its output is > 0,
        as torch's relu does.
        """
        w, g = self.params, self.grads
        out, a1, a2 = self.forward(x)
        diff = out.sub_(y.transpose(-1, -2))
        n_values = diff.shape[1] * diff.shape[2]  # outputs x rows of one model
        loss = torch.linalg.vector_norm(diff, dim=(1, 2)).square_().div_(n_values)

        # Layer 3, then back through each ReLU to layers 2 and 1.
        d_out = diff.mul_(2.0 / n_values)
        torch.bmm(d_out, a2.transpose(1, 2), out=g["w3"])
        torch.sum(d_out, dim=2, out=g["b3"])
        d_z2 = relu_backward(torch.bmm(w["w3"].transpose(1, 2), d_out), a2)
        torch.bmm(d_z2, a1.transpose(1, 2), out=g["w2"])
        torch.sum(d_z2, dim=2, out=g["b2"])
        d_z1 = relu_backward(torch.bmm(w["w2"].transpose(1, 2), d_z2), a1)
        # The first layer's gradient is computed transposed, as x^T d_z1^T:
        # with only d_in = 10 columns, d_z1 x is a product that MKL runs about
        # three times slower than its transpose (measured on one thread).
        if x.dim() == 2:
            w1_grad_t = torch.mm(x.T, d_z1.view(-1, d_z1.shape[2]).T)
            g["w1"].view(-1, self.d_in).copy_(w1_grad_t.T)
        else:
            g["w1"].copy_(torch.bmm(x.transpose(1, 2), d_z1.transpose(1, 2)).transpose(1, 2))
        torch.sum(d_z1, dim=2, out=g["b1"])
        return loss

    @torch.no_grad()
    def mse(self, x, y, rows_per_chunk=2048):
        """Per-model MSE on the whole of (x, y), in row chunks to bound memory."""
        total = torch.zeros(self.k, dtype=self.flat.dtype)
        for start in range(0, len(x), rows_per_chunk):
            out, _, _ = self.forward(x[start : start + rows_per_chunk])
            total += (out - y[start : start + rows_per_chunk].T).pow(2).sum(dim=(1, 2))
        return total / y.numel()

    def padding_is_zero(self, widths):
        """True when every padded unit's weights and biases are still exactly 0."""
        w = self.params
        for k, m in enumerate(widths):
            padded = [w["w1"][k, m:], w["b1"][k, m:], w["w2"][k, m:], w["w2"][k, :, m:],
                      w["b2"][k, m:], w["w3"][k, :, m:]]
            if any(t.abs().sum() != 0 for t in padded):
                return False
        return True
