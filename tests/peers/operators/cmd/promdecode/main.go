// Command promdecode decodes Prometheus operator objects (PrometheusRule, ServiceMonitor, PodMonitor) from YAML
// files with the operator's own Go API types, rejecting any field those types do not have, and prints each
// object as the types hold it (one JSON object per line): what the operator would read, nothing more.
//
// Usage: promdecode FILE...   (exit 1 on the first document that does not decode)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func typed(kind string) (any, error) {
	switch kind {
	case monitoringv1.PrometheusRuleKind:
		return &monitoringv1.PrometheusRule{}, nil
	case monitoringv1.ServiceMonitorsKind:
		return &monitoringv1.ServiceMonitor{}, nil
	case monitoringv1.PodMonitorsKind:
		return &monitoringv1.PodMonitor{}, nil
	}
	return nil, fmt.Errorf("kind %q is not a Prometheus operator kind this program decodes", kind)
}

func decodeFile(path string, out *json.Encoder) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	reader := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for index := 0; ; index++ {
		doc, err := reader.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, index, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			continue
		}
		var h header
		if err := sigsyaml.Unmarshal(doc, &h); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, index, err)
		}
		if h.APIVersion != monitoringv1.SchemeGroupVersion.String() {
			return fmt.Errorf("%s: document %d: apiVersion %q, want %q", path, index, h.APIVersion,
				monitoringv1.SchemeGroupVersion.String())
		}
		obj, err := typed(h.Kind)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, index, err)
		}
		// UnmarshalStrict: a field the Go type does not declare, or a key given twice, is an error.
		if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", path, index, h.Kind, err)
		}
		if err := out.Encode(obj); err != nil {
			return err
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promdecode FILE...")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		if err := decodeFile(path, out); err != nil {
			fmt.Fprintln(os.Stderr, "promdecode:", err)
			os.Exit(1)
		}
	}
}
