// Package protocol is what a goselfsup host and its plugin processes agree on: the
// go-plugin handshake, the protocol version and the gRPC plugin that carries the Plugin
// service of ../proto/plugin.proto. Plugin authors use package sdk instead.
package protocol

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/goselfsup/goselfsup/plugins/pb"
)

// Version is the protocol version this goselfsup speaks. It changes only when the protocol
// breaks; fields and calls are added within a version the protobuf way.
const Version = 1

// BinaryPrefix starts the file name of every plugin binary: goselfsup-plugin-<name>.
const BinaryPrefix = "goselfsup-plugin-"

// Handshake makes sure a binary is a goselfsup plugin (not a security measure: go-plugin's
// "UX feature", so that running a plugin by hand explains itself).
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "GOSELFSUP_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "9c3b5a1e0f7d4c2a8e6b1d3f5a7c9e0b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c",
}

// The namespaces of plugin components (Component.namespace of the manifest).
const (
	// NamespaceEvaluators: a component that evaluates extracted features (the input
	// InputFeaturesDir).
	NamespaceEvaluators = "evaluators"
	// NamespaceBenchmarks: a downstream benchmark that is a whole run of its own (inputs
	// InputConfig, InputBaseDir and InputResume).
	NamespaceBenchmarks = "benchmarks"
)

// The names of EvaluateRequest.inputs.
const (
	// InputFeaturesDir is the folder of tools/extract's .npy files (evaluators).
	InputFeaturesDir = "features_dir"
	// InputConfig is the benchmark's merged config, a TOML file (benchmarks).
	InputConfig = "config"
	// InputBaseDir is the folder against which the config's relative paths resolve: the
	// host's working directory (benchmarks).
	InputBaseDir = "base_dir"
	// InputResume continues an interrupted run: "auto" (the newest checkpoint in the
	// work_dir) or a checkpoint's path; absent to start afresh (benchmarks).
	InputResume = "resume"
)

// PluginKey names the Plugin service in go-plugin's plugin set.
const PluginKey = "goselfsup"

// MaxMessageSize lifts gRPC's 4 MiB default on both sides; big data travels as files.
const MaxMessageSize = 64 << 20

// GRPCPlugin carries the Plugin service over go-plugin: Impl on the plugin's side; on
// the host's, GRPCClient returns a pb.PluginClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.PluginServer
}

func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, p.Impl)
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewPluginClient(c), nil
}

// Sets returns go-plugin's versioned plugin sets for the given protocol versions.
func Sets(server pb.PluginServer, versions ...int) map[int]plugin.PluginSet {
	out := map[int]plugin.PluginSet{}
	for _, v := range versions {
		out[v] = plugin.PluginSet{PluginKey: &GRPCPlugin{Impl: server}}
	}
	return out
}

// NewGRPCServer is the plugin side's gRPC server, with MaxMessageSize.
func NewGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))...)
}
