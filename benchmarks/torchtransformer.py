"""The one PyTorch build of our transformer network (vggnumpy/nn/transformer.py) on our parameters: the oracle the
tests compare every output and gradient with, and the peer bench_fast.py times. torch is imported when a network
is built, never by vggnumpy itself."""
from vggnumpy.nn import transformer as T


def build(params, requires_grad=False):
    """A torch.nn.Module computing the same function as transformer.Transformer(params), float32 copies of params
    (requires_grad: their gradients are wanted). named_parameter(module, our_name) finds each one again."""
    import torch
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, u):
            super().__init__()
            self.u = u
            self.pad = nn.ReflectionPad2d(u.k // 2)
            self.conv = nn.Conv2d(u.cin, u.cout, u.k, u.stride, bias=not u.norm)
            self.norm = nn.InstanceNorm2d(u.cout, affine=True) if u.norm else None

        def forward(self, x):
            if self.u.up > 1:
                x = nn.functional.interpolate(x, scale_factor=self.u.up, mode="nearest")
            x = self.conv(self.pad(x))
            if self.norm is not None:
                x = self.norm(x)
            return torch.relu(x) if self.u.relu else x

    class Net(nn.Module):
        def __init__(self, units):
            super().__init__()
            self.names = [u.name for u in units]
            self.units = nn.ModuleList(Unit(u) for u in units)

        def forward(self, x):
            for name, m in zip(self.names, self.units):
                if name.endswith("_1"):
                    skip = x
                x = m(x)
                if name.endswith("_2"):
                    x = x + skip
            return 0.5 + T.OUT_GAIN * torch.tanh(x)

    net = Net(T.layout(params["conv1.w"].shape[0] / T.CHANNELS[0]))
    with torch.no_grad():
        for name, value in params.items():
            named_parameter(net, name).copy_(torch.from_numpy(value.astype("float32")))
    for p in net.parameters():
        p.requires_grad_(requires_grad)
    return net


def named_parameter(net, name):
    """The torch parameter of our parameter `name` ("res2_1.gamma" -> the InstanceNorm's weight, ...)."""
    unit, kind = name.split(".")
    m = net.units[net.names.index(unit)]
    return {"w": m.conv.weight, "b": m.conv.bias, "gamma": m.norm.weight if m.norm else None,
            "beta": m.norm.bias if m.norm else None}[kind]
