"""ament_python / pip build script for seg_perception."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'seg_perception'


def share(pattern: str) -> list[str]:
    """Return the plain files matching ``pattern`` (relative to this file)."""
    return sorted(f for f in glob(pattern) if os.path.isfile(f))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'tools']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', share('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', share('config/*')),
        ('share/' + PACKAGE + '/models', share('models/*')),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='seg_perception maintainers',
    maintainer_email='seg-perception@example.com',
    description='FCN-8s road segmentation node, trainer, evaluator and bag replay for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'road_segmentation = seg_perception.ros.node:main',
            'seg_train = seg_perception.cli.train:main',
            'seg_evaluate = seg_perception.cli.evaluate:main',
            'seg_bag = seg_perception.cli.bag:main',
            'seg_export = seg_perception.cli.export:main',
        ],
    },
)
