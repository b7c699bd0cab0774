package privacy

import (
	"context"
	"errors"
	"maps"
	"slices"

	"tutela"
	"tutela/vault"
)

// Subjects seals subjects' field values for the store and opens what the store returns. It is
// the only place a subject's plaintext meets a key: the store receives ciphertexts and digests
// (Sealed) and gives back ciphertexts and the wrapped key (Stored).
//
// Sealing happens before the write transaction that stores the result: the vault may create a
// tenant's keyset on first use, in a transaction of its own.
type Subjects struct {
	Keys  Keys
	Index Index
}

// NewSubjects returns the subject sealer over v.
func NewSubjects(v *vault.Vault) Subjects {
	return Subjects{Keys: Keys{Vault: v}, Index: Index{Vault: v}}
}

// Sealed is one change of a subject, ready to store: no plaintext in it.
type Sealed struct {
	SubjectID string
	// Wrapped is the new subject's wrapped data key (SealNew only).
	Wrapped []byte
	// Values are the ciphertexts of the fields set, each bound to (tenant, subject, field).
	Values map[string][]byte
	// Digests are the blind-index digests of the searchable fields set (primary key).
	Digests map[string]Digest
	// Clear are the fields to remove.
	Clear []string
	// Types are the types the values were validated as, for every field set or cleared: the
	// store refuses the change if the schema it reads in its transaction disagrees (the schema
	// changed between sealing and storing).
	Types map[string]FieldType
}

// Fields returns the names of the fields set and cleared, sorted: what an audit event may say.
func (s *Sealed) Fields() (set, cleared []string) {
	return slices.Sorted(maps.Keys(s.Values)), slices.Sorted(slices.Values(s.Clear))
}

// Stored is a subject as the store holds it.
type Stored struct {
	SubjectID string
	Wrapped   []byte // nil: erased
	Values    map[string][]byte
}

// SealNew validates values against schema and seals them under a new data key for a new
// subject. At least one value is required; an unknown field is refused.
func (s Subjects) SealNew(ctx context.Context, tenantID string, schema Schema, values map[string]string) (*Sealed, error) {
	if len(values) == 0 {
		return nil, tutela.FieldErrorf("values", "at least one field value is required")
	}
	changes := make(map[string]*string, len(values))
	for k, v := range values {
		changes[k] = &v
	}
	if err := checkChanges(schema, changes); err != nil {
		return nil, err
	}
	id := tutela.NewID()
	pk, wrapped, err := s.Keys.New(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	out := &Sealed{SubjectID: id, Wrapped: wrapped}
	return out, s.seal(ctx, tenantID, pk, schema, changes, out)
}

// SealUpdate validates changes (field → new value, or nil to clear it) against schema and
// seals the new values under the subject's existing key (wrapped, from the store; nil: erased,
// ErrErased).
func (s Subjects) SealUpdate(ctx context.Context, tenantID, subjectID string, wrapped []byte, schema Schema, changes map[string]*string) (*Sealed, error) {
	if len(changes) == 0 {
		return nil, tutela.FieldErrorf("values", "at least one field change is required")
	}
	if err := checkChanges(schema, changes); err != nil {
		return nil, err
	}
	pk, err := s.Keys.Open(ctx, tenantID, subjectID, wrapped)
	if err != nil {
		return nil, err
	}
	out := &Sealed{SubjectID: subjectID}
	return out, s.seal(ctx, tenantID, pk, schema, changes, out)
}

func checkChanges(schema Schema, changes map[string]*string) error {
	for _, name := range slices.Sorted(maps.Keys(changes)) {
		f, ok := schema.Field(name)
		if !ok {
			return tutela.FieldErrorf(name, "%s is not a field of this tenant's subject schema", name)
		}
		if v := changes[name]; v != nil {
			if err := ValidateValue(name, f.Type, *v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s Subjects) seal(ctx context.Context, tenantID string, pk *PersonKey, schema Schema, changes map[string]*string, out *Sealed) error {
	out.Values, out.Digests, out.Types = map[string][]byte{}, map[string]Digest{}, map[string]FieldType{}
	for name, v := range changes {
		f, _ := schema.Field(name)
		out.Types[name] = f.Type
		if v == nil {
			out.Clear = append(out.Clear, name)
			continue
		}
		ct, err := pk.Seal(name, []byte(*v))
		if err != nil {
			return err
		}
		out.Values[name] = ct
		if f.Searchable {
			d, err := s.Index.Digest(ctx, tenantID, name, Normalize(f.Type, *v))
			if err != nil {
				return err
			}
			out.Digests[name] = d
		}
	}
	slices.Sort(out.Clear)
	return nil
}

// Open decrypts the stored fields named in fields (all of them when fields is nil). A value that
// does not open (moved from another subject, field or tenant, or altered) is ErrDecrypt; an
// erased subject is ErrErased.
func (s Subjects) Open(ctx context.Context, tenantID string, st *Stored, fields []string) (map[string]string, error) {
	pk, err := s.Keys.Open(ctx, tenantID, st.SubjectID, st.Wrapped)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, ct := range st.Values {
		if fields != nil && !slices.Contains(fields, name) {
			continue
		}
		pt, err := pk.Open(name, ct)
		if err != nil {
			return nil, err
		}
		out[name] = string(pt)
	}
	return out, nil
}

// SearchDigests validates value for field f and returns the digests a search compares with:
// one per enabled blind-index key. No key is created and nothing is decrypted; a tenant without
// a blind-index keyset gets none (nothing can match).
func (s Subjects) SearchDigests(ctx context.Context, tenantID string, f Field, value string) ([]Digest, error) {
	if !f.Searchable {
		return nil, tutela.FieldErrorf("field", "%s is not searchable", f.Name)
	}
	if err := ValidateValue("value", f.Type, value); err != nil {
		return nil, err
	}
	return s.Index.Lookup(ctx, tenantID, f.Name, Normalize(f.Type, value))
}

// IsErased reports whether err means the subject was erased.
func IsErased(err error) bool { return errors.Is(err, ErrErased) }
