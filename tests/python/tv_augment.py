"""Reference outputs of torchvision's functional ops for tests/data/augment_test.

Usage: tv_augment.py IN.pt OUT.pt   (IN: {'rgb': 3xHxW, 'grey': 1xHxW} in [0,1])
"""
import sys

import torch
import torchvision.transforms.functional as F

inp = torch.load(sys.argv[1], weights_only=True)
rgb, grey = inp["rgb"], inp["grey"]
out = {
    "crop": F.resized_crop(rgb, 5, 7, 20, 30, [24, 24], antialias=False),
    "crop_up": F.resized_crop(grey, 0, 0, 9, 13, [28, 28], antialias=False),
    "brightness": F.adjust_brightness(rgb, 1.3),
    "contrast": F.adjust_contrast(rgb, 0.7),
    "contrast_grey": F.adjust_contrast(grey, 1.35),
    "saturation": F.adjust_saturation(rgb, 1.4),
    "hue_pos": F.adjust_hue(rgb, 0.08),
    "hue_neg": F.adjust_hue(rgb, -0.3),
    "grayscale": F.rgb_to_grayscale(rgb, num_output_channels=3),
    "blur": F.gaussian_blur(rgb, [7, 7], [1.3, 1.3]),
    "blur_grey": F.gaussian_blur(grey, [13, 13], [2.0, 2.0]),
    "flip": F.hflip(rgb),
    "normalize": F.normalize(rgb, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}
torch.save(out, sys.argv[2])
