package backend

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Virtual devices. With the option devices=N the CPU engine offers N devices, all in the
// host's memory: a buffer of device 0 is a plain buffer of GoMLX's pure-Go backend, and a
// buffer of device d > 0 is that buffer wrapped in a deviceBuffer that says d. The backend's
// buffer methods unwrap it; the pieces always run on plain buffers, and the executor wraps
// the outputs of device d > 0 as it returns them. An SPMD program runs once per device (see
// cpu_spmd.go).

// deviceBuffer is a buffer of device d > 0.
type deviceBuffer struct {
	buf    backends.Buffer // the pure-Go backend's buffer
	device backends.DeviceNum
}

// plain returns the pure-Go backend's buffer of buf and its device.
func plain(buf backends.Buffer) (backends.Buffer, backends.DeviceNum) {
	if d, ok := buf.(*deviceBuffer); ok {
		return d.buf, d.device
	}
	return buf, 0
}

// onDevice tags a pure-Go buffer as a buffer of device d.
func onDevice(buf backends.Buffer, d backends.DeviceNum) backends.Buffer {
	if d == 0 || buf == nil {
		return buf
	}
	return &deviceBuffer{buf: buf, device: d}
}

// checkDevice returns an error unless d is one of c's devices.
func (c *cpuBackend) checkDevice(d backends.DeviceNum) error {
	if d < 0 || int(d) >= c.devices {
		if c.devices == 1 {
			return fmt.Errorf("backend %q has one device (0), not device %d (the option devices=N gives N)", c.Name(), d)
		}
		return fmt.Errorf("backend %q has devices 0 to %d, not device %d", c.Name(), c.devices-1, d)
	}
	return nil
}

func (c *cpuBackend) NumDevices() int { return c.devices }

func (c *cpuBackend) DeviceDescription(d backends.DeviceNum) string {
	if c.devices == 1 {
		return c.Backend.DeviceDescription(d)
	}
	return fmt.Sprintf("virtual device %d of %d on the host: %s", d, c.devices, c.Backend.DeviceDescription(0))
}

func (c *cpuBackend) BufferFinalize(buf backends.Buffer) error {
	p, _ := plain(buf)
	return c.Backend.BufferFinalize(p)
}

func (c *cpuBackend) BufferShape(buf backends.Buffer) (shapes.Shape, error) {
	p, _ := plain(buf)
	return c.Backend.BufferShape(p)
}

func (c *cpuBackend) BufferDeviceNum(buf backends.Buffer) (backends.DeviceNum, error) {
	p, d := plain(buf)
	if _, err := c.Backend.BufferDeviceNum(p); err != nil {
		return 0, err
	}
	return d, nil
}

func (c *cpuBackend) BufferToFlatData(buf backends.Buffer, flat any) error {
	p, _ := plain(buf)
	return c.Backend.BufferToFlatData(p, flat)
}

func (c *cpuBackend) BufferFromFlatData(d backends.DeviceNum, flat any, shape shapes.Shape) (backends.Buffer, error) {
	if err := c.checkDevice(d); err != nil {
		return nil, err
	}
	buf, err := c.Backend.BufferFromFlatData(0, flat, shape)
	return onDevice(buf, d), err
}

func (c *cpuBackend) NewSharedBuffer(d backends.DeviceNum, shape shapes.Shape) (backends.Buffer, any, error) {
	if err := c.checkDevice(d); err != nil {
		return nil, nil, err
	}
	buf, flat, err := c.Backend.NewSharedBuffer(0, shape)
	return onDevice(buf, d), flat, err
}

func (c *cpuBackend) BufferData(buf backends.Buffer) (any, error) {
	p, _ := plain(buf)
	return c.Backend.BufferData(p)
}

// BufferCopyToDevice copies the buffer's data into a new buffer of device d (another device
// than the buffer's, as GoMLX's interface asks).
func (c *cpuBackend) BufferCopyToDevice(buf backends.Buffer, d backends.DeviceNum) (backends.Buffer, error) {
	if err := c.checkDevice(d); err != nil {
		return nil, err
	}
	p, from := plain(buf)
	if from == d {
		return nil, fmt.Errorf("BufferCopyToDevice: the buffer is already on device %d", d)
	}
	nb, err := copyBuffer(c.Backend, p)
	return onDevice(nb, d), err
}

// copyBuffer copies a pure-Go buffer into a new one.
func copyBuffer(be backends.Backend, buf backends.Buffer) (backends.Buffer, error) {
	s, err := be.BufferShape(buf)
	if err != nil {
		return nil, err
	}
	src, err := be.BufferData(buf)
	if err != nil {
		return nil, err
	}
	nb, dst, err := be.NewSharedBuffer(0, s)
	if err != nil {
		return nil, err
	}
	if reflect.Copy(reflect.ValueOf(dst), reflect.ValueOf(src)) != s.Size() {
		_ = be.BufferFinalize(nb)
		return nil, errors.New("copying a buffer: sizes differ")
	}
	return nb, nil
}
