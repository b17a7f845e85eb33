# CIFAR-100 for the knowledge-distillation benchmark (CRD / mdistiller
# protocol): 32x32 images, random crop with 4-pixel zero padding and
# horizontal flip, batch 64 on one GPU, evaluation on the 10k test images.
# MMPretrain's CIFAR100 dataset reads (or downloads) the official
# ``cifar-100-python`` pickles under data/cifar100.
dataset_type = 'CIFAR100'
data_preprocessor = dict(
    num_classes=100,
    # CIFAR-100 mean/std in RGB (mdistiller's 0.5071/0.4867/0.4408,
    # 0.2675/0.2565/0.2761, times 255)
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    # the dataset already yields RGB arrays
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar100',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root='data/cifar100',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
