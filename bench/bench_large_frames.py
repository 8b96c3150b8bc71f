r"""Large rgb8 frames between two processes: Fast DDS transports x reliability x frame size.

For each combination a subscriber process (with a ``message_lost`` event callback, as the
node has) and a publisher process are started on a fresh ROS domain (localhost only); the
publisher sends ``--count`` frames at ``--rate`` Hz once matched, and the subscriber reports
how many arrived and how many the middleware reported lost. Transports:

* ``profile``: the packaged ``config/fastdds_large_images.xml`` (32 MiB shared-memory
  segment + UDP) in both processes;
* ``large_data``: Fast DDS' builtin ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (shared memory
  + TCP, UDP for discovery only) in both processes, no profile file.

    python -m bench.bench_large_frames --count 30 --rate 5 --out bench/results/large_frames.json

Frame sizes: 1242x375 (KITTI, 1.4 MB), 2048x1536 (9.4 MB), 4000x3000 (36 MB).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import time
from typing import Any

from seg_perception.core.choices import RELIABILITIES

REPO = pathlib.Path(__file__).resolve().parent.parent
PROFILE = REPO / 'config' / 'fastdds_large_images.xml'
SIZES = {'1.4MB': (375, 1242), '9.4MB': (1536, 2048), '36MB': (3000, 4000)}
TRANSPORTS = ('profile', 'large_data')

TOPIC = '/bench/large_image'


def qos(reliability: str) -> Any:
    """Keep-last 1 (sensor style) with the given reliability."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                   else ReliabilityPolicy.BEST_EFFORT))


def subscriber(reliability: str, count: int, timeout: float) -> dict[str, Any]:
    """Count frames received and reported lost until ``count`` arrived or ``timeout``."""
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('large_frame_sink')
    state = {'received': 0, 'lost': 0, 'first': None, 'last': None}

    def on_image(msg: Image) -> None:
        state['received'] += 1
        state['last'] = time.monotonic()
        state['first'] = state['first'] or state['last']

    def on_lost(info: Any) -> None:
        state['lost'] += int(info.total_count_change)

    node.create_subscription(Image, TOPIC, on_image, qos(reliability),
                             event_callbacks=SubscriptionEventCallbacks(message_lost=on_lost))
    deadline = time.monotonic() + timeout
    print('READY', flush=True)
    while time.monotonic() < deadline and state['received'] < count:
        rclpy.spin_once(node, timeout_sec=0.1)
        if state['last'] and time.monotonic() - state['last'] > 5.0:
            break  # the publisher is done; nothing more will come
    node.destroy_node()
    rclpy.shutdown()
    return {'received': state['received'], 'lost_reported': state['lost']}


def publisher(size: str, reliability: str, count: int, rate: float) -> dict[str, Any]:
    """Wait for the subscriber, publish ``count`` frames at ``rate`` Hz."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    h, w = SIZES[size]
    rclpy.init()
    node = rclpy.create_node('large_frame_source')
    pub = node.create_publisher(Image, TOPIC, qos(reliability))
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)  # let the reader's locators settle
    msg = Image(height=h, width=w, encoding='rgb8', step=w * 3)
    msg.data = np.random.default_rng(0).integers(0, 256, h * w * 3, np.uint8).tobytes()
    t0 = time.monotonic()
    for i in range(count):
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        while (wait := t0 + (i + 1) / rate - time.monotonic()) > 0:
            rclpy.spin_once(node, timeout_sec=wait)
    time.sleep(2.0)  # reliable: let repairs finish
    node.destroy_node()
    rclpy.shutdown()
    return {'sent': count, 'bytes': h * w * 3}


def environment(transport: str) -> dict[str, str]:
    """Environment of both processes for one transport (fresh domain, localhost only)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                        'FASTDDS_BUILTIN_TRANSPORTS')}
    env.update(ROS_DOMAIN_ID=str(random.randint(102, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', RMW_IMPLEMENTATION='rmw_fastrtps_cpp')
    if transport == 'profile':
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    else:
        env['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
    return env


def run_case(transport: str, reliability: str, size: str, count: int, rate: float
             ) -> dict[str, Any]:
    """One combination: subscriber and publisher subprocesses; their JSON results merged."""
    env = environment(transport)
    base = [sys.executable, '-m', 'bench.bench_large_frames', '--role']
    sub = subprocess.Popen([*base, 'sub', '--reliability', reliability, '--count', str(count),
                            '--timeout', str(count / rate + 60)], env=env, cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    sub.stdout.readline()  # READY
    pub = subprocess.run([*base, 'pub', '--size', size, '--reliability', reliability,
                          '--count', str(count), '--rate', str(rate)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=count / rate + 120)
    out, _ = sub.communicate(timeout=count / rate + 120)
    result = {'transport': transport, 'reliability': reliability, 'size': size,
              **json.loads(pub.stdout.strip().splitlines()[-1]),
              **json.loads(out.strip().splitlines()[-1])}
    result['unaccounted'] = result['sent'] - result['received'] - result['lost_reported']
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every combination (or one role of one, for the subprocesses)."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--role', choices=['sub', 'pub'])
    p.add_argument('--size', choices=list(SIZES), default='1.4MB')
    p.add_argument('--reliability', choices=RELIABILITIES, default='best_effort')
    p.add_argument('--count', type=int, default=30)
    p.add_argument('--rate', type=float, default=5.0)
    p.add_argument('--timeout', type=float, default=60.0)
    p.add_argument('--sizes', nargs='+', choices=list(SIZES), default=list(SIZES))
    p.add_argument('--out', help='JSON results file')
    args = p.parse_args(argv)
    if args.role == 'sub':
        print(json.dumps(subscriber(args.reliability, args.count, args.timeout)))
        return 0
    if args.role == 'pub':
        print(json.dumps(publisher(args.size, args.reliability, args.count, args.rate)))
        return 0
    results = []
    print('| transport | reliability | frame | sent | received | lost (reported) | '
          'unaccounted |\n|---|---|---|---|---|---|---|')
    for size in args.sizes:
        for reliability in RELIABILITIES:
            for transport in TRANSPORTS:
                r = run_case(transport, reliability, size, args.count, args.rate)
                results.append(r)
                print(f'| {transport} | {reliability} | {size} | {r["sent"]} | '
                      f'{r["received"]} | {r["lost_reported"]} | {r["unaccounted"]} |',
                      flush=True)
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({'count': args.count, 'rate': args.rate,
                                                      'results': results}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
