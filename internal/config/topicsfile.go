package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/feedmon/feedmon/internal/topics"
)

// LoadTopics reads the topic rules of a topics file (`feedmon backtest
// -topics`): a YAML document with a top-level topics: map in the config's
// format, merged over the built-in topics as a config's are. A whole config
// file will do; only its topics are used. The file is checked as the
// classifier checks a config, so its errors are those of `feedmon check`,
// each an *Error naming its key. A file without a topics: key is an error:
// it would silently mean the built-in topics.
func LoadTopics(path string, env LookupEnv) (topics.Set, error) {
	data, err := readFile(path, "-topics")
	if err != nil {
		return nil, err
	}
	// Invalid YAML is left to ParseFor, which reports it as check does.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil && !hasTopLevelKey(&root, "topics") {
		return nil, errorf("topics", "missing in %s: a topics file holds a top-level topics: map", path)
	}
	cfg, err := ParseFor(data, env, Classifier)
	if err != nil {
		return nil, err
	}
	return cfg.TopicSet, nil
}

// hasTopLevelKey reports whether the document root is a mapping with key.
func hasTopLevelKey(root *yaml.Node, key string) bool {
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return false
	}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key {
			return true
		}
	}
	return false
}
