"""The lecture's three networks in PyTorch and in Keras, built identically to convnet's
presets (same layers, same shapes, NHWC for Keras and NCHW for PyTorch)."""


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
    else:
        raise ValueError(name)
    return shape, keras.Sequential([keras.Input(shape)] + ls)
