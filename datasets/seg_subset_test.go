package datasets

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

// subsetFixture is one 6x1 image with its grey map of the given values, and a
// BaseSegDataset table of it with the classes a, b, c, d and their colours.
func subsetFixture(t *testing.T, values []uint8) map[string]any {
	root := t.TempDir()
	writeJPEG(t, filepath.Join(root, "img", "x.jpg"), len(values), 1)
	writeMask(t, filepath.Join(root, "ann", "x.png"), len(values), 1, false, func(x, _ int) uint8 { return values[x] })
	return map[string]any{"data_root": root, "img_dir": "img", "ann_dir": "ann", "pipeline": segLoad(),
		"metainfo": map[string]any{"classes": []any{"a", "b", "c", "d"},
			"palette": []any{[]any{1, 1, 1}, []any{2, 2, 2}, []any{3, 3, 3}, []any{4, 4, 4}}}}
}

func with(table map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range table {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func loadMap(t *testing.T, ds *Dataset) []uint8 {
	t.Helper()
	s, err := ds.Get(0, SampleRNG(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return s.Mask.Pix
}

func buildErr(typ string, table map[string]any) error {
	_, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, typ, table))
	return err
}

// The golden values by hand, as mmseg's get_label_map and LoadAnnotations give them.
func TestSegClassSubsetMapsTheLabels(t *testing.T) {
	table := subsetFixture(t, []uint8{0, 1, 2, 3, 255, 1})

	// No subset: the values as they are.
	ds := buildDataset(t, "BaseSegDataset", table)
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{0, 1, 2, 3, 255, 1}) {
		t.Fatalf("without a subset: %v", got)
	}
	// The same list in the same order is no subset.
	ds = buildDataset(t, "BaseSegDataset", with(table, "classes", []any{"a", "b", "c", "d"}))
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{0, 1, 2, 3, 255, 1}) || ds.Source.(*segSource).labelMap != nil {
		t.Fatalf("the full list as a subset: %v", got)
	}

	// classes = [d, b]: label_map {0: 255, 1: 1, 2: 255, 3: 0}; 255 stays.
	ds = buildDataset(t, "BaseSegDataset", with(table, "classes", []any{"d", "b"}))
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{255, 1, 255, 0, 255, 1}) {
		t.Fatalf("subset [d b]: %v", got)
	}
	src := ds.Source.(SegSource)
	if !reflect.DeepEqual(src.Classes(), []string{"d", "b"}) || !reflect.DeepEqual(src.Palette(), [][3]uint8{{4, 4, 4}, {2, 2, 2}}) {
		t.Fatalf("subset [d b]: classes %v, palette %v", src.Classes(), src.Palette())
	}

	// The dropped classes become ignore_index (255, mmseg's, unless the config says otherwise).
	table = subsetFixture(t, []uint8{0, 1, 2, 3, 200, 1})
	ds = buildDataset(t, "BaseSegDataset", with(table, "classes", []any{"d", "b"}, "ignore_index", 200))
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{200, 1, 200, 0, 200, 1}) {
		t.Fatalf("subset [d b], ignore_index 200: %v", got)
	}
}

func TestSegClassSubsetAfterReduceZeroLabel(t *testing.T) {
	// Map values 1..4 are a..d, 0 unlabelled. reduce_zero_label: 0 1 2 3 4 255 ->
	// 255 0 1 2 3 255; then classes = [c, a]: {0: 1, 1: 255, 2: 0, 3: 255}.
	table := with(subsetFixture(t, []uint8{0, 1, 2, 3, 4, 255}), "reduce_zero_label", true)
	ds := buildDataset(t, "BaseSegDataset", with(table, "classes", []any{"c", "a"}))
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{255, 1, 255, 0, 255, 255}) {
		t.Fatalf("reduce_zero_label then subset [c a]: %v", got)
	}
	if p := ds.Source.(SegSource).Palette(); !reflect.DeepEqual(p, [][3]uint8{{3, 3, 3}, {1, 1, 1}}) {
		t.Fatalf("palette %v", p)
	}
	// LoadAnnotations' own reduce_zero_label comes before the subset too.
	table["reduce_zero_label"] = false
	table["pipeline"] = []any{map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "LoadAnnotations", "reduce_zero_label": true}, map[string]any{"type": "PackSegInputs"}}
	ds = buildDataset(t, "BaseSegDataset", with(table, "classes", []any{"c", "a"}))
	if got := loadMap(t, ds); !reflect.DeepEqual(got, []uint8{255, 1, 255, 0, 255, 255}) {
		t.Fatalf("LoadAnnotations' reduce_zero_label, subset [c a]: %v", got)
	}
}

func TestSegClassSubsetErrorsNameTheKey(t *testing.T) {
	table := subsetFixture(t, []uint8{0, 1, 2, 3, 255, 1})
	for _, c := range []struct {
		name  string
		table map[string]any
		want  []string
	}{
		{"unknown names", with(table, "classes", []any{"b", "zebra", "yak"}), []string{"classes", `"zebra", "yak"`, "not among the 4 classes of metainfo.classes"}},
		{"a name twice", with(table, "classes", []any{"b", "a", "b"}), []string{"classes", `names "b" twice`}},
		{"a palette of neither size", with(table, "classes", []any{"b", "a"}, "metainfo", map[string]any{"classes": []any{"a", "b", "c", "d"},
			"palette": []any{[]any{1, 1, 1}, []any{2, 2, 2}, []any{3, 3, 3}}}), []string{"metainfo.palette", "has 3 colours"}},
		{"a subset without metainfo.classes", with(table, "classes", []any{"b"}, "metainfo", map[string]any{}), []string{"metainfo.classes", "is required"}},
	} {
		err := buildErr("BaseSegDataset", c.table)
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
}

// PascalVOCDataset's own classes are VOC's 21; metainfo.classes names a subset (mmseg 1.x).
func TestPascalVOCClassSubset(t *testing.T) {
	root := vocFixture(t)
	// a's map (stripes(2)): x 0-3 background, x 4-7 aeroplane, then 255.
	spec := vocSpec(root, "train.txt", "SegmentationClass", segLoad())
	spec["metainfo"] = map[string]any{"classes": []any{"aeroplane", "background"}}
	ds := buildDataset(t, "PascalVOCDataset", spec)
	got := loadMap(t, ds)
	for x, want := range map[int]uint8{0: 1, 3: 1, 4: 0, 7: 0, 8: 255, 39: 255} {
		if got[x] != want {
			t.Fatalf("x %d: %d, want %d", x, got[x], want)
		}
	}
	src := ds.Source.(SegSource)
	if !reflect.DeepEqual(src.Classes(), []string{"aeroplane", "background"}) || !reflect.DeepEqual(src.Palette(), [][3]uint8{{128, 0, 0}, {0, 0, 0}}) {
		t.Fatalf("classes %v, palette %v", src.Classes(), src.Palette())
	}
	// The classes key names the same subset.
	spec = vocSpec(root, "train.txt", "SegmentationClass", segLoad())
	spec["classes"] = []any{"aeroplane", "background"}
	if got2 := loadMap(t, buildDataset(t, "PascalVOCDataset", spec)); !reflect.DeepEqual(got2, got) {
		t.Fatalf("classes key: %v, metainfo.classes: %v", got2, got)
	}
	// A palette of the subset's size is taken as it is.
	spec["metainfo"] = map[string]any{"classes": []any{"cat", "dog"}, "palette": []any{[]any{9, 9, 9}, []any{8, 8, 8}}}
	delete(spec, "classes")
	if p := buildDataset(t, "PascalVOCDataset", spec).Source.(SegSource).Palette(); !reflect.DeepEqual(p, [][3]uint8{{9, 9, 9}, {8, 8, 8}}) {
		t.Fatalf("palette %v", p)
	}

	spec["metainfo"] = map[string]any{"classes": []any{"background", "person", "unicorn"}}
	if err := buildErr("PascalVOCDataset", spec); err == nil || !strings.Contains(err.Error(), "metainfo.classes") || !strings.Contains(err.Error(), `"unicorn"`) ||
		!strings.Contains(err.Error(), "21 classes of the dataset") {
		t.Fatalf("an unknown class: %v", err)
	}
	spec["classes"] = []any{"person"}
	if err := buildErr("PascalVOCDataset", spec); err == nil || !strings.Contains(err.Error(), "classes") || !strings.Contains(err.Error(), "give one") {
		t.Fatalf("two subsets: %v", err)
	}
}
