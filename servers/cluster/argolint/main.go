// Command argolint validates Argo Workflows manifests offline with Argo's own validation
// package (workflow/validate), the same code the controller and `argo lint --offline` run.
//
// Usage: argolint FILE.yaml [FILE.yaml ...]
//
// Every YAML document of kind WorkflowTemplate, ClusterWorkflowTemplate, Workflow or
// CronWorkflow is decoded strictly (unknown fields are errors) and validated. Templates given
// on the command line can reference each other (templateRef, workflowTemplateRef); references to
// anything else fail. Other kinds are skipped. Exit status: 0 all valid, 1 invalid, 2 usage/IO.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/workflow/validate"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type doc struct {
	file  string
	index int
	kind  string
	raw   []byte
}

// offlineGetter resolves WorkflowTemplates from the files being linted, never from a cluster.
type offlineGetter struct {
	namespace string
	byKey     map[string]*v1alpha1.WorkflowTemplate
}

func (g offlineGetter) Get(_ context.Context, name string) (*v1alpha1.WorkflowTemplate, error) {
	if t, ok := g.byKey[g.namespace+"/"+name]; ok {
		return t, nil
	}
	if t, ok := g.byKey["/"+name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("workflowtemplates.argoproj.io %q not found among the linted files", name)
}

type offlineClusterGetter struct {
	byName map[string]*v1alpha1.ClusterWorkflowTemplate
}

func (g offlineClusterGetter) Get(_ context.Context, name string) (*v1alpha1.ClusterWorkflowTemplate, error) {
	if t, ok := g.byName[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("clusterworkflowtemplates.argoproj.io %q not found among the linted files", name)
}

func readDocs(path string) ([]doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var docs []doc
	for i := 0; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		docs = append(docs, doc{file: path, index: i, kind: meta.Kind, raw: raw})
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: argolint FILE.yaml [FILE.yaml ...]")
		os.Exit(2)
	}
	ctx := logging.WithLogger(context.Background(), logging.NewSlogLoggerCustom(logging.Error, logging.Text, os.Stderr))

	var docs []doc
	for _, path := range os.Args[1:] {
		d, err := readDocs(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "argolint: %v\n", err)
			os.Exit(2)
		}
		docs = append(docs, d...)
	}

	wfts := map[string]*v1alpha1.WorkflowTemplate{}
	cwfts := map[string]*v1alpha1.ClusterWorkflowTemplate{}
	failures := 0
	fail := func(d doc, name string, err error) {
		failures++
		fmt.Fprintf(os.Stderr, "%s: %s %q (document %d): INVALID: %v\n", d.file, d.kind, name, d.index, err)
	}
	// First pass: strict decode, collect templates so references between files resolve.
	decoded := make([]any, len(docs))
	for i, d := range docs {
		var obj any
		switch d.kind {
		case "WorkflowTemplate":
			obj = &v1alpha1.WorkflowTemplate{}
		case "ClusterWorkflowTemplate":
			obj = &v1alpha1.ClusterWorkflowTemplate{}
		case "Workflow":
			obj = &v1alpha1.Workflow{}
		case "CronWorkflow":
			obj = &v1alpha1.CronWorkflow{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(d.raw, obj); err != nil {
			fail(d, "", fmt.Errorf("decode: %w", err))
			continue
		}
		decoded[i] = obj
		switch o := obj.(type) {
		case *v1alpha1.WorkflowTemplate:
			wfts[o.Namespace+"/"+o.Name] = o
		case *v1alpha1.ClusterWorkflowTemplate:
			cwfts[o.Name] = o
		}
	}

	checked := 0
	cget := offlineClusterGetter{byName: cwfts}
	opts := validate.ValidateOpts{Lint: true}
	for i, d := range docs {
		var name string
		var err error
		switch o := decoded[i].(type) {
		case nil:
			continue
		case *v1alpha1.WorkflowTemplate:
			name = o.Name
			err = validate.ValidateWorkflowTemplate(ctx, offlineGetter{o.Namespace, wfts}, cget, o, nil, opts)
		case *v1alpha1.ClusterWorkflowTemplate:
			name = o.Name
			err = validate.ValidateClusterWorkflowTemplate(ctx, offlineGetter{"", wfts}, cget, o, nil, opts)
		case *v1alpha1.Workflow:
			name = o.Name + o.GenerateName
			err = validate.ValidateWorkflow(ctx, offlineGetter{o.Namespace, wfts}, cget, o, nil, opts)
		case *v1alpha1.CronWorkflow:
			name = o.Name
			err = validate.ValidateCronWorkflow(ctx, offlineGetter{o.Namespace, wfts}, cget, o, nil)
		}
		checked++
		if err != nil {
			fail(d, name, err)
			continue
		}
		fmt.Printf("%s: %s %q: ok\n", d.file, d.kind, name)
	}
	if failures > 0 {
		fmt.Fprintf(os.Stderr, "argolint: %d invalid document(s)\n", failures)
		os.Exit(1)
	}
	if checked == 0 {
		fmt.Fprintln(os.Stderr, "argolint: no Argo documents found in the given files")
		os.Exit(1)
	}
}
