;;;; SPDX-License-Identifier: MIT
;;;; tests.lisp: the FiveAM suite of aclheap, against a real aclheapd.
;;;;
;;;; check_lisp.sh starts the daemon on a private socket, state folder and
;;;; base, and sets what these tests read:
;;;;
;;;;   ACLHEAP_SOCKET       the daemon's socket
;;;;   ACLHEAP_LIBRARY      the build tree's libaclheap.so.1
;;;;   ACLHEAP_TEST_BASE    the heap's base address, hex
;;;;   ACLHEAP_TEST_SIZE    the heap's size in bytes
;;;;   ACLHEAP_HELPER       tests/helper_client, a C client of the same heap
;;;;
;;;; Blocks shared with the C client use helper_client's index format: a
;;;; block of n (u64), seed (u64), then n pairs (address u64, size u64);
;;;; byte j of block i holds (seed*31 + i*7 + j + j/256) mod 256.
;;;;
;;;; save-image and image-main are the saved-image scenario: check_lisp.sh
;;;; saves an image, kills and restarts the daemon, removes its segment,
;;;; swaps in another heap, and starts the image each time.

(defpackage #:aclheap-tests
  (:use #:common-lisp #:aclheap #:fiveam)
  (:export #:save-image #:image-main #:run-suite))

(in-package #:aclheap-tests)

(def-suite aclheap :description "aclheap against a real aclheapd")
(in-suite aclheap)

(defun env (name)
  (or (uiop:getenv name) (error "~A is not set (run check_lisp.sh)" name)))

(defun test-base () (parse-integer (env "ACLHEAP_TEST_BASE") :start 2 :radix 16))
(defun test-size () (parse-integer (env "ACLHEAP_TEST_SIZE")))
;; The heap's maximum: blocks lie below base + max (the metadata for the
;; maximum comes first), and nothing is mapped past it.
(defun test-max () (parse-integer (env "ACLHEAP_TEST_MAX")))

(defun peek (address &optional (offset 0))
  (cffi:mem-ref (cffi:make-pointer address) :uint8 offset))
(defun (setf peek) (value address &optional (offset 0))
  (setf (cffi:mem-ref (cffi:make-pointer address) :uint8 offset) value))
(defun peek64 (address &optional (offset 0))
  (cffi:mem-ref (cffi:make-pointer address) :uint64 offset))
(defun (setf peek64) (value address &optional (offset 0))
  (setf (cffi:mem-ref (cffi:make-pointer address) :uint64 offset) value))

(defun usable (address) (aclheap::%usable-size address))
(defun blocks-in-use () (getf (stats) :blocks-in-use))

(defun pattern (seed i j)
  (ldb (byte 8 0) (+ (* seed 31) (* i 7) j (ash j -8))))

(defun block-size (i)
  "Tiny, small-class and extent sizes, 0 included."
  (case (mod i 10)
    (0 0)
    (9 (+ 8193 (* i 101)))
    (t (mod (* i 37) 1500))))

(defun fill-index (root n seed)
  "N blocks with their patterns and an index block at ROOT: the index's
address and the list of (address . size)."
  (let ((ix (aclmalloc (+ 16 (* 16 n))))
        (blocks '()))
    (assert (/= ix 0))
    (setf (peek64 ix 0) n (peek64 ix 8) seed)
    (dotimes (i n)
      (let* ((size (block-size i))
             (p (aclmalloc size)))
        (assert (/= p 0))
        (dotimes (j size)
          (setf (peek p j) (pattern seed i j)))
        (setf (peek64 ix (+ 16 (* 16 i))) p
              (peek64 ix (+ 24 (* 16 i))) size)
        (push (cons p size) blocks)))
    (setf (root root) ix)
    (values ix (nreverse blocks))))

(defun check-index (root seed)
  "NIL when every block of ROOT's index is live and holds its pattern, else
what is wrong, in words."
  (multiple-value-bind (ix found) (root root)
    (cond ((not found) (format nil "no root ~S" root))
          ((/= (peek64 ix 8) seed) (format nil "index seed ~D" (peek64 ix 8)))
          (t
           (dotimes (i (peek64 ix 0) nil)
             (let ((p (peek64 ix (+ 16 (* 16 i))))
                   (size (peek64 ix (+ 24 (* 16 i)))))
               (when (< (usable p) size)
                 (return (format nil "block ~D at #x~X is not live" i p)))
               (dotimes (j size)
                 (unless (= (peek p j) (pattern seed i j))
                   (return-from check-index
                     (format nil "block ~D at #x~X: byte ~D is ~D, want ~D"
                             i p j (peek p j) (pattern seed i j)))))))))))

(defun helper (&rest args)
  "Runs helper_client with ARGS: its exit status and output."
  (multiple-value-bind (out err status)
      (uiop:run-program (cons (env "ACLHEAP_HELPER")
                              (mapcar #'princ-to-string args))
                        :output :string :error-output :string
                        :ignore-error-status t)
    (values status (concatenate 'string out err))))

(defmacro signals-errno ((errno) &body body)
  "BODY signals aclheap-error with ERRNO and a message in words."
  `(let ((c (handler-case (progn ,@body nil)
              (aclheap-error (c) c))))
     (is (typep c 'aclheap-error) "~S signalled no aclheap-error" ',body)
     (when c
       (is (= ,errno (aclheap-error-errno c)))
       (is (plusp (length (aclheap-error-message c))))
       (is (search (aclheap-error-message c) (princ-to-string c))))))

(defconstant +einval+ 22)

;;; The seed's family

(test aclmalloc-sizes
  (let* ((sizes '(0 1 15 16 17 64 100 1000 8192 8193 65536 65537 1048576))
         (ps (mapcar #'aclmalloc sizes))
         (before (blocks-in-use)))
    (loop for p in ps for size in sizes
          do (is (integerp p))
             (is (/= 0 p))
             (is (zerop (mod p 16)))
             (is (<= (test-base) p (+ (test-base) (test-max) -1)))
             (is (>= (usable p) size))
             (dotimes (j (min size 4096))
               (setf (peek p j) (ldb (byte 8 0) (+ j size)))))
    (is (= (length ps) (length (remove-duplicates ps))))
    (loop for p in ps for size in sizes
          do (is (every (lambda (j) (= (peek p j) (ldb (byte 8 0) (+ j size))))
                        (loop for j below (min size 4096) collect j)))
             (is (= size (aclfree p))))
    (is (= (- before (length sizes)) (blocks-in-use)))))

(test aclmalloc-restart-relocation-accepted
  (let ((a (aclmalloc 24 :restart-relocation t))
        (b (aclmalloc 24 :restart-relocation nil)))
    (is (/= 0 a))
    (is (/= 0 b))
    (is (= 24 (aclfree a)))
    (is (= 24 (aclfree b)))))

(test aclmalloc-no-space-is-0
  (let ((before (blocks-in-use)))
    (is (= 0 (aclmalloc (* 2 (test-size)))))
    (is (= 0 (aclmalloc (1- (expt 2 64)))))
    (is (= 0 (aclmalloc-aligned (* 2 (test-size)))))
    (is (= before (blocks-in-use)))))

(test aclmalloc-bad-input
  (let ((before (blocks-in-use)))
    (signals type-error (aclmalloc -1))
    (signals type-error (aclmalloc (expt 2 64)))
    (signals type-error (aclmalloc 1.5))
    (signals type-error (aclmalloc "64"))
    (signals type-error (aclmalloc nil))
    (signals error (funcall 'aclmalloc 64 :no-such-key t))
    (signals type-error (aclmalloc-aligned -8))
    (is (= before (blocks-in-use)))))

(test aclmalloc-zero-is-unique
  (let ((a (aclmalloc 0)) (b (aclmalloc 0)))
    (is (/= a b))
    (is (= 0 (aclfree a)))
    (is (= 0 (aclfree b)))
    ;; Freed: a second free changes nothing and is still the seed's 0.
    (is (= 0 (aclfree a)))))

(test aclfree-refusals
  (let* ((p (aclmalloc 100))
         (before (blocks-in-use)))
    (is (= 0 (aclfree 0)))
    (is (= 0 (aclfree (+ p 16))))           ; inside a block
    (is (= 0 (aclfree 8)))                  ; outside the heap
    (is (= 0 (aclfree (+ (test-base) (test-max) 4096))))
    (is (= 0 (aclfree-aligned 0)))
    (signals type-error (aclfree -16))
    (signals type-error (aclfree (expt 2 64)))
    (signals type-error (aclfree "0"))
    (signals type-error (aclfree-aligned (expt 2 63)))
    (is (= before (blocks-in-use)))
    (is (>= (usable p) 100))
    (is (= 100 (aclfree p)))
    (is (= 0 (aclfree p)))                  ; already freed
    (is (= (1- before) (blocks-in-use)))))

(test aligned-conversions
  (is (= 33554433 (address-to-aligned #x10000008)))
  (is (= #x10000008 (aligned-to-address 33554433)))
  (is (= -1 (address-to-aligned #xfffffffffffffff8)))
  (is (= #xfffffffffffffff8 (aligned-to-address -1)))
  (is (= 0 (address-to-aligned 0)))
  ;; The C library's conversions agree on every kind of word.
  (dolist (a (list 0 8 #x10000008 (test-base) #x7ffffffffffffff8
                   #x8000000000000000 #xfffffffffffffff8))
    (is (= (aclheap::%address-to-aligned a) (address-to-aligned a)))
    (is (= a (aligned-to-address (address-to-aligned a))))
    (is (= (aclheap::%aligned-to-address (address-to-aligned a))
           (aligned-to-address (address-to-aligned a)))))
  (signals-errno (+einval+) (address-to-aligned #x10000004))
  (signals-errno (+einval+) (address-to-aligned 1))
  (signals type-error (address-to-aligned -8))
  (signals type-error (address-to-aligned (expt 2 64)))
  (signals type-error (aligned-to-address (expt 2 63)))
  (signals type-error (aligned-to-address "1")))

(test aligned-family
  (let* ((a (aclmalloc-aligned 40))
         (p (aligned-to-address a)))
    (is (/= 0 a))
    (is (= a (address-to-aligned p)))
    (is (>= (usable p) 40))
    (is (= 40 (aclfree-aligned a)))
    (is (= 0 (aclfree-aligned a))))
  ;; Either family frees the other's blocks.
  (let ((p (aclmalloc 48)))
    (is (= 48 (aclfree-aligned (address-to-aligned p)))))
  (let ((a (aclmalloc-aligned 56)))
    (is (= 56 (aclfree (aligned-to-address a))))))

;;; Roots

(test roots
  (let ((p (aclmalloc 8)) (q (aclmalloc 8)))
    (is (= p (setf (root "lisp data") p)))
    (is (equal (list p t) (multiple-value-list (root "lisp data"))))
    (setf (root "lisp data") q)
    (is (= q (root "lisp data")))
    (is (equal '(nil nil) (multiple-value-list (root "no such root"))))
    (is (equal '(:none nil) (multiple-value-list (root "no such root" :none))))
    ;; A root holding 0 exists.
    (setf (root "zero") 0)
    (is (equal '(0 t) (multiple-value-list (root "zero" :none))))
    (is (remove-root "zero"))
    (is (eq nil (remove-root "zero")))
    (is (remove-root "lisp data"))
    (is (= 8 (aclfree p)))
    (is (= 8 (aclfree q)))))

(test root-cas
  (let ((a (aclmalloc 8)) (b (aclmalloc 8)))
    (is-true (root-cas "cas" nil a))        ; create only if absent
    (is-false (root-cas "cas" nil b))
    (is (= a (root "cas")))
    (is-false (root-cas "cas" b a))         ; holds a, not b
    (is-true (root-cas "cas" a b))
    (is (= b (root "cas")))
    (is-true (root-cas "cas" b nil))        ; remove
    (is (equal '(nil nil) (multiple-value-list (root "cas"))))
    (is-true (root-cas "cas" 0 a))          ; 0 is NIL
    (is-true (root-cas "cas" a 0))
    (is (equal '(nil nil) (multiple-value-list (root "cas"))))
    (aclfree a)
    (aclfree b)))

(test root-bad-names
  (let ((before (list-roots)))
    (dolist (bad (list "" (make-string 256 :initial-element #\x) (format nil "tab~Cx" #\Tab)
                       "caf\é" (format nil "nul~Cx" (code-char 0))))
      (signals-errno (+einval+) (setf (root bad) 16))
      (signals-errno (+einval+) (root bad))
      (signals-errno (+einval+) (root-cas bad nil 16))
      (signals-errno (+einval+) (remove-root bad)))
    ;; The NUL name did not become "nul".
    (is (equal '(nil nil) (multiple-value-list (root "nul"))))
    (signals type-error (root 'symbol))
    (signals type-error (setf (root 42) 16))
    (signals type-error (setf (root "ok") -1))
    (signals type-error (setf (root "ok") (expt 2 64)))
    (signals type-error (root-cas "ok" -1 nil))
    (signals type-error (root-cas "ok" nil "x"))
    (signals type-error (remove-root nil))
    (is (equal before (list-roots))))
  ;; 255 bytes is the longest name.
  (let ((name (make-string 255 :initial-element #\y)))
    (setf (root name) 24)
    (is (= 24 (root name)))
    (is (remove-root name))))

(test list-roots
  (let ((before (list-roots)))
    (is (listp before))
    (dotimes (i 150)                         ; more than one call's room
      (setf (root (format nil "list ~3,'0D" i)) (* 16 (1+ i))))
    (let ((now (list-roots)))
      (is (= (+ 150 (length before)) (length now)))
      (is (equal (sort (copy-list now) #'string< :key #'car) now))
      (dotimes (i 150)
        (is (= (* 16 (1+ i)) (cdr (assoc (format nil "list ~3,'0D" i) now
                                         :test #'string=))))))
    (dotimes (i 150)
      (remove-root (format nil "list ~3,'0D" i)))
    (is (equal before (list-roots)))))

;;; Checkpoints, figures, attaching

(test stats-and-checkpoint
  (let* ((s (stats))
         (p (aclmalloc 1000))
         (s2 (stats)))
    (is (= (test-base) (getf s :base)))
    (is (= (test-size) (getf s :size)))
    (is (< 0 (getf s :data-size) (test-size)))
    (is (= (1+ (getf s :blocks-in-use)) (getf s2 :blocks-in-use)))
    (is (= (+ 1000 (getf s :bytes-requested)) (getf s2 :bytes-requested)))
    (is-true (checkpoint))
    (let ((s3 (stats)))
      (is (= (1+ (getf s2 :generation)) (getf s3 :generation)))
      (is (<= (- (get-universal-time) (encode-universal-time 0 0 0 1 1 1970 0) 60)
              (getf s3 :last-checkpoint))))
    (is (= 1000 (aclfree p)))))

(test grow-refusals
  ;; The suite's heap keeps its size: only what changes nothing here.
  (is-true (grow (test-size)))
  (signals-errno (22) (grow (* 4 (test-max))))
  (signals-errno (22) (grow (+ (test-size) 4096)))
  (signals-errno (22) (grow 0))
  (signals type-error (grow -1))
  (is (= (test-size) (getf (stats) :size))))

(test attach-and-detach
  (let ((p (aclmalloc 77)))
    (setf (root "keep") p)
    (is-true (attach))                      ; attached: fine
    (is-true (attach (env "ACLHEAP_SOCKET"))) ; the same socket: fine
    (signals type-error (attach 42))
    ;; Another socket while attached: EISCONN, still attached.
    (signals-errno (106) (attach "/nonexistent/aclheap.sock"))
    (is-true (attached-p))
    (detach)
    (is-false (attached-p))
    (is (= 0 (aclheap::%contains p)))
    ;; No daemon there: the error names the socket tried.
    (let ((c (handler-case (attach "/nonexistent/aclheap.sock")
               (aclheap-error (c) c))))
      (is (typep c 'aclheap-error))
      (when (typep c 'aclheap-error)
        (is (member (aclheap-error-errno c) '(2 111)))
        (is (search "/nonexistent/aclheap.sock" (aclheap-error-message c)))))
    (is-false (attached-p))
    ;; The next call attaches by itself; the block lived on.
    (is (= p (root "keep")))
    (is-true (attached-p))
    (is (= 1 (aclheap::%contains p)))
    (is (= 77 (aclfree p)))
    (remove-root "keep")))

(defun setenv (name value)
  (cffi:foreign-funcall "setenv" :string name :string value :int 1 :int))

(test no-daemon-is-a-condition-not-0
  ;; No daemon is not the seed's "no space": every attaching call signals.
  (let ((socket (env "ACLHEAP_SOCKET")))
    (detach)
    (setenv "ACLHEAP_SOCKET" "/nonexistent/aclheap.sock")
    (unwind-protect
         (progn
           (dolist (f (list (lambda () (aclmalloc 8))
                            (lambda () (aclmalloc-aligned 8))
                            (lambda () (root "x"))
                            (lambda () (setf (root "x") 8))
                            (lambda () (root-cas "x" nil 8))
                            (lambda () (remove-root "x"))
                            #'list-roots #'stats #'checkpoint))
             (let ((c (handler-case (progn (funcall f) nil)
                        (aclheap-error (c) c))))
               (is (typep c 'aclheap-error))
               (when c
                 (is (member (aclheap-error-errno c) '(2 111)))
                 (is (search "/nonexistent/aclheap.sock"
                             (aclheap-error-message c))))))
           (is-false (attached-p))
           ;; Freeing needs no daemon: not a block, the seed's 0.
           (is (= 0 (aclfree (+ (test-base) 4096)))))
      (setenv "ACLHEAP_SOCKET" socket))
    (let ((p (aclmalloc 8)))
      (is (plusp p))
      (is-true (attached-p))
      (is (= 8 (aclfree p))))))

(test excl-names
  (is (eq 'aclmalloc (find-symbol "ACLMALLOC" "EXCL")))
  (is (eq 'aclfree (find-symbol "ACLFREE" "EXCL")))
  (is (eq 'address-to-aligned (find-symbol "ADDRESS-TO-ALIGNED" "FF")))
  (is (= 33554433 (funcall (find-symbol "ADDRESS-TO-ALIGNED" "FF") #x10000008))))

#+sbcl
(test save-hook-detaches-init-hook-reattaches
  ;; The hooks by themselves, without saving: detached and the library
  ;; closed, then loaded and attached again to the same heap.
  (let ((p (aclmalloc 32)))
    (setf (peek p 5) 99)
    (aclheap::image-save-hook)
    (is-false (attached-p))
    (is (null aclheap:*library*))
    (is (eq 'aclheap::image-init-hook (first sb-ext:*init-hooks*)))
    (aclheap::image-init-hook)
    (is-true (attached-p))
    (is (stringp aclheap:*library*))
    (is (= 99 (peek p 5)))
    (is (= 32 (aclfree p)))))

;;; With a C client of the same heap

(test c-client-reads-lisp-blocks
  (fill-index "from lisp" 40 7)
  (multiple-value-bind (status out) (helper "check" "from lisp" 7)
    (is (= 0 status) "helper_client check: ~A" out)
    (is (search "40 blocks ok" out)))
  ;; The check can fail: one wrong byte is seen.
  (let* ((ix (root "from lisp"))
         (p (peek64 ix (+ 16 (* 16 1)))))
    (setf (peek p 3) (ldb (byte 8 0) (1+ (peek p 3))))
    (multiple-value-bind (status out) (helper "check" "from lisp" 7)
      (is (/= 0 status))
      (is (search "byte 3" out)))
    (setf (peek p 3) (ldb (byte 8 0) (1- (peek p 3)))))
  (multiple-value-bind (status out) (helper "free" "from lisp")
    (is (= 0 status) "helper_client free: ~A" out))
  (is (equal '(nil nil) (multiple-value-list (root "from lisp")))))

(test lisp-reads-c-client-blocks
  (multiple-value-bind (status out) (helper "fill" "from c" 60 11)
    (is (= 0 status) "helper_client fill: ~A" out))
  (is (null (check-index "from c" 11)))
  (is (stringp (check-index "from c" 12)))  ; the check can fail
  ;; Lisp frees what C allocated: the sizes C asked for.
  (let ((ix (root "from c")))
    (dotimes (i (peek64 ix 0))
      (is (= (peek64 ix (+ 24 (* 16 i)))
             (aclfree (peek64 ix (+ 16 (* 16 i)))))))
    (aclfree ix))
  (remove-root "from c"))

(defun run-suite ()
  (run! 'aclheap))

;;; The saved image (SBCL)

#+sbcl
(progn

(defvar *image-index* nil)
(defvar *image-blocks* nil)
(defvar *user-hook-saw-heap* :not-run)

(defun save-image (path)
  "Fills blocks at the root \"image\", checkpoints, and saves an image of
this Lisp at PATH whose toplevel is image-main."
  (multiple-value-bind (ix blocks) (fill-index "image" 50 23)
    (setf *image-index* ix
          *image-blocks* blocks))
  (checkpoint)
  ;; A user's init hook, pushed after the library's: it must find the
  ;; heap attached already.
  (push (lambda () (setf *user-hook-saw-heap* (attached-p)))
        sb-ext:*init-hooks*)
  (sb-ext:save-lisp-and-die path :toplevel #'image-main))

(defun image-main ()
  "The saved image's toplevel: same heap, same addresses, same bytes."
  (let ((problem
          (cond ((not (eq *user-hook-saw-heap* t))
                 (format nil "an init hook ran before the heap was attached"))
                ((not (attached-p))
                 "not attached at start-up")
                ((/= (root "image" 0) *image-index*)
                 (format nil "root image is #x~X, was #x~X" (root "image" 0)
                         *image-index*))
                ((check-index "image" 23))
                ((let ((ix *image-index*))
                   (loop for (p . size) in *image-blocks*
                         for i from 0
                         unless (and (= p (peek64 ix (+ 16 (* 16 i))))
                                     (= size (peek64 ix (+ 24 (* 16 i)))))
                           return (format nil "block ~D moved" i)))))))
    (cond (problem
           (format *error-output* "image check failed: ~A~%" problem)
           (finish-output *error-output*)
           (sb-ext:exit :code 1))
          (t
           ;; And the heap works: a block allocated and freed.
           (let ((p (aclmalloc 64)))
             (setf (peek p 63) 1)
             (assert (= 64 (aclfree p))))
           (format t "image ok: ~D blocks at the same addresses, base #x~X~%"
                   (length *image-blocks*) (getf (stats) :base))
           (finish-output)
           (sb-ext:exit :code 0))))))
