"""convnet's presets in PyTorch and in Keras, built identically (same layers, same shapes, NHWC
for Keras and NCHW for PyTorch): the lecture's three networks, ResNet-20 v1 (He et al. 2016, as
Keras' CIFAR-10 ResNet example builds it: 3x3 conv-BN-ReLU blocks, 1x1 projection shortcuts,
16/32/64 filters) and MobileNetV2 at width 0.35 on 96x96x3 (Keras' `applications` layout)."""

# BatchNormalization as Keras defines it (momentum 0.99 of the old value, epsilon 1e-3).
BN_EPS, TORCH_BN_MOMENTUM = 1e-3, 0.01


def _divisible(v, d=8):
    """Keras' and torchvision's channel rounding for MobileNet widths."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


# MobileNetV2's inverted residual blocks: (expansion, filters, repeats, first stride).
MOBILENET_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _torch_resnet20(channels):
    import torch.nn as nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=BN_EPS, momentum=TORCH_BN_MOMENTUM)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), bn(cout), nn.ReLU(),
                                      nn.Conv2d(cout, cout, 3, 1, 1), bn(cout))
            self.short = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.short(x))

    layers, cin = [nn.Conv2d(channels, 16, 3, 1, 1), bn(16), nn.ReLU()], 16
    for stage, cout in enumerate([16, 32, 64]):
        for block in range(3):
            layers.append(Block(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def _torch_mobilenet_v2(alpha=0.35):
    import torch.nn as nn

    def cbr(cin, cout, k, stride, groups=1, relu=True):
        mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.001)]
        return mods + ([nn.ReLU6()] if relu else [])

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hidden = cin * t
            mods = (cbr(cin, hidden, 1, 1) if t != 1 else []) + cbr(hidden, hidden, 3, stride, hidden)
            self.body = nn.Sequential(*mods, *cbr(hidden, cout, 1, 1, relu=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    cin = _divisible(32 * alpha)
    layers = cbr(3, cin, 3, 2)
    for t, c, n, s in MOBILENET_V2_BLOCKS:
        cout = _divisible(c * alpha)
        for i in range(n):
            layers.append(Inverted(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers += cbr(cin, 1280, 1, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 10)]
    return nn.Sequential(*layers)


def keras_resnet20(shape=(32, 32, 3), keras=None):
    """ResNet-20 v1 as a Keras functional model (the `keras` module given: Keras 3 or tf_keras)."""
    if keras is None:
        import keras
    L = keras.layers

    def unit(x, filters, kernel=3, strides=1, relu=True, bn=True):
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal")(x)
        if bn:
            x = L.BatchNormalization()(x)
        return L.Activation("relu")(x) if relu else x

    inp = keras.Input(shape)
    x = unit(inp, 16)
    for stage, filters in enumerate([16, 32, 64]):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = unit(x, filters, strides=strides)
            y = unit(y, filters, relu=False)
            if strides != 1:
                x = unit(x, filters, kernel=1, strides=strides, relu=False, bn=False)
            x = L.Activation("relu")(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inp, out, name="resnet20")


def torch_model(name):
    import torch.nn as nn
    if name == "lenet5":
        return (1, 28, 28), nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    if name == "mnist-cnn":
        return (1, 28, 28), nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, 10))
    if name == "cifar10-cnn":
        return (3, 32, 32), nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(1600, 512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, 10))
    if name == "resnet20":
        return (3, 32, 32), _torch_resnet20(3)
    if name == "mobilenet-v2":
        return (3, 96, 96), _torch_mobilenet_v2()
    raise ValueError(name)


def keras_model(name):
    import keras
    from keras import layers as L
    if name == "lenet5":
        shape, ls = (28, 28, 1), [
            L.Conv2D(6, 5, padding="same", activation="relu"), L.MaxPooling2D(),
            L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(),
            L.Conv2D(120, 5, activation="relu"), L.Flatten(),
            L.Dense(84, activation="relu"), L.Dense(10, activation="softmax")]
    elif name == "mnist-cnn":
        shape, ls = (28, 28, 1), [
            L.Conv2D(32, 3, activation="relu"), L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(),
            L.Dropout(0.25), L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.25),
            L.Dense(10, activation="softmax")]
    elif name == "cifar10-cnn":
        shape, ls = (32, 32, 3), [
            L.Conv2D(32, 3, activation="relu"), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
            L.Dropout(0.25),
            L.Conv2D(64, 3, activation="relu"), L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(),
            L.Dropout(0.25), L.Flatten(), L.Dense(512, activation="relu"), L.Dropout(0.5),
            L.Dense(10, activation="softmax")]
    elif name == "resnet20":
        return (32, 32, 3), keras_resnet20()
    elif name == "mobilenet-v2":
        return (96, 96, 3), keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    else:
        raise ValueError(name)
    return shape, keras.Sequential([keras.Input(shape)] + ls)
